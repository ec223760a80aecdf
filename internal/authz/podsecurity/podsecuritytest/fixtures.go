// Package podsecuritytest reads the test fixtures of
// k8s.io/pod-security-admission, the pods its own tests check the Pod
// Security Standards with, from the module cache at test time: the module
// zip carries test/testdata/<level>/<version>/{pass,fail}/*.yaml.
package podsecuritytest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/pod-security-admission/api"
	"sigs.k8s.io/yaml"
)

// Module is the module whose fixtures are read, at the version go.mod
// requires.
const Module = "k8s.io/pod-security-admission"

// Fixture is one pod of the library's test data.
type Fixture struct {
	// Name is the file name without ".yaml": the lower-cased ID of the
	// check the pod was made for and a number ("privileged1",
	// "capabilities_baseline0"), or "base..." for the base pods.
	Name string
	// Pass is true for a pod that meets the level, false for one that
	// must fail it.
	Pass bool
	// Pod is the Pod as the apiserver would store it, which is what
	// jitproxy judges, decoded into JSON values (maps, slices, strings,
	// float64, bool, nil). The files hold pods as sent, before the
	// apiserver's defaulting; the one default the checks depend on is
	// applied here: a volume without a source becomes an emptyDir (the
	// restricted pass fixture restrictedvolumes0 has one, and the checks
	// call a volume without a source a restricted "unknown" type).
	Pod map[string]any
}

// Check is the lower-cased ID of the check the fixture was made for: Name
// without its number.
func (f Fixture) Check() string { return strings.TrimRight(f.Name, "0123456789") }

// Fixtures returns the fixtures of level ("baseline" or "restricted") in the
// newest version directory, and that version ("v1.37"). It ends the test
// when the module's directory cannot be found (the go command runs
// `go list -m`) or holds no fixtures for the level.
func Fixtures(t testing.TB, level string) (version string, fixtures []Fixture) {
	t.Helper()
	levelDir := filepath.Join(moduleDir(t), "test", "testdata", level)
	entries, err := os.ReadDir(levelDir)
	if err != nil {
		t.Fatalf("fixtures of %s: %v", level, err)
	}
	newest := api.Version{}
	for _, e := range entries {
		v, err := api.ParseVersion(e.Name())
		if err != nil || !e.IsDir() || v.Latest() {
			continue
		}
		if newest.Older(v) {
			newest, version = v, e.Name()
		}
	}
	if version == "" {
		t.Fatalf("no version directory in %s", levelDir)
	}
	for _, outcome := range []string{"pass", "fail"} {
		files, err := filepath.Glob(filepath.Join(levelDir, version, outcome, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			fixtures = append(fixtures, read(t, file, outcome == "pass"))
		}
	}
	if !slices.ContainsFunc(fixtures, func(f Fixture) bool { return f.Pass }) ||
		!slices.ContainsFunc(fixtures, func(f Fixture) bool { return !f.Pass }) {
		t.Fatalf("%s/%s: want pass and fail fixtures, got %d fixtures", levelDir, version, len(fixtures))
	}
	return version, fixtures
}

func read(t testing.TB, file string, pass bool) Fixture {
	t.Helper()
	y, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var pod map[string]any
	if err := json.Unmarshal(j, &pod); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if pod["kind"] != "Pod" {
		t.Fatalf("%s: kind is %v, want Pod", file, pod["kind"])
	}
	defaultVolumes(pod)
	return Fixture{Name: strings.TrimSuffix(filepath.Base(file), ".yaml"), Pass: pass, Pod: pod}
}

// defaultVolumes gives a volume that names no source an empty emptyDir, as
// the apiserver's defaulting does.
func defaultVolumes(pod map[string]any) {
	spec, _ := pod["spec"].(map[string]any)
	volumes, _ := spec["volumes"].([]any)
	for _, v := range volumes {
		if volume, ok := v.(map[string]any); ok && len(volume) == 1 && volume["name"] != nil {
			volume["emptyDir"] = map[string]any{}
		}
	}
}

func moduleDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", Module).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", Module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatalf("go list -m %s: the module is not in the module cache; run go mod download", Module)
	}
	return dir
}
