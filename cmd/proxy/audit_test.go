package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
)

func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	key := "0123456789abcdef-key"
	keyFile := writeFile(t, dir, "key", key+"\n")
	c, prev := audit.NewChainer([]byte(key)), ""
	var lines []string
	for i := range 3 {
		data, err := audit.EncodeNative(audit.Event{Version: audit.SchemaVersion, ID: "e" + string(rune('a'+i)), Type: audit.TypeRequest, Time: time.Unix(0, 0).UTC()}, audit.Chain{Seq: uint64(i + 1), Prev: prev})
		if err != nil {
			t.Fatal(err)
		}
		sealed, h, err := c.Seal(prev, data)
		if err != nil {
			t.Fatal(err)
		}
		lines, prev = append(lines, string(sealed)), h
	}
	good := writeFile(t, dir, "good.log", strings.Join(lines, "\n")+"\n")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify", "--key-file", keyFile, good}, env(nil), &out, &out); err != nil {
		t.Fatalf("verify of an intact file: %v", err)
	}
	if !strings.HasPrefix(out.String(), "ok: 3 records, seq 1 to 3") {
		t.Errorf("output = %q", out.String())
	}
	// A rotated pair verifies as one stream.
	first := writeFile(t, dir, "a.log", lines[0]+"\n")
	second := writeFile(t, dir, "b.log", strings.Join(lines[1:], "\n")+"\n")
	if err := run(context.Background(), []string{"audit", "verify", "--key-file", keyFile, first, second}, env(nil), &out, &out); err != nil {
		t.Errorf("verify of rotated files: %v", err)
	}
	edited := writeFile(t, dir, "edited.log", strings.Join([]string{lines[0], strings.Replace(lines[1], `"eb"`, `"ex"`, 1), lines[2]}, "\n")+"\n")
	err := run(context.Background(), []string{"audit", "verify", "--key-file", keyFile, edited}, env(nil), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "line 2 (seq 2): edited") || !strings.Contains(err.Error(), "after 1 good records") {
		t.Errorf("verify of an edited file = %v", err)
	}
	if err := run(context.Background(), []string{"audit", "verify", filepath.Join(dir, "missing")}, env(nil), &out, &out); !os.IsNotExist(err) && (err == nil || !strings.Contains(err.Error(), "no such file")) {
		t.Errorf("verify of a missing file = %v", err)
	}
}
