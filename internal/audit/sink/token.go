package sink

import (
	"fmt"
	"os"
	"strings"

	"github.com/jitproxy/jitproxy/internal/secret"
)

// ReadToken returns the token held by file, without leading and trailing
// white space. It returns an error if file cannot be read, holds only
// white space, or holds more than one line; the error names the setting
// token_file and the file, never its content. A token it returns is never
// the zero Value. It reads the file at each call, so a caller that calls
// it before each delivery uses a rotated token without a restart.
func ReadToken(file string) (secret.Value, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		// The error names the file, never its content.
		return "", fmt.Errorf("token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	switch {
	case t == "":
		return "", fmt.Errorf("token_file %s is empty", file)
	case strings.ContainsAny(t, "\r\n"):
		return "", fmt.Errorf("token_file %s holds more than one line", file)
	}
	return secret.Value(t), nil
}
