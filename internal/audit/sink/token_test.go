package sink

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	put := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name    string
		file    string
		want    string
		wantErr string
	}{
		{name: "one line", file: put("token", "canary-tok-1\n"), want: "canary-tok-1"},
		{name: "white space around", file: put("spaced", " \tcanary-tok-2 \r\n"), want: "canary-tok-2"},
		{name: "missing", file: dir + "/missing", wantErr: "token_file: open " + dir + "/missing: no such file or directory"},
		{name: "a directory", file: dir, wantErr: "token_file: read " + dir + ": is a directory"},
		{name: "empty", file: put("empty", ""), wantErr: "token_file " + dir + "/empty is empty"},
		{name: "blank", file: put("blank", " \n\t\n"), wantErr: "token_file " + dir + "/blank is empty"},
		{name: "two lines", file: put("two", "canary-a\ncanary-b\n"), wantErr: "token_file " + dir + "/two holds more than one line"},
		{name: "carriage return", file: put("cr", "canary-a\rcanary-b"), wantErr: "token_file " + dir + "/cr holds more than one line"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ReadToken(tt.file)
			if diff := cmp.Diff(tt.wantErr, errText(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got := tok.Reveal(); got != tt.want {
				t.Errorf("token %q, want %q", got, tt.want)
			}
			if strings.Contains(errText(err), "canary") {
				t.Errorf("the error shows the file's content: %v", err)
			}
		})
	}
}
