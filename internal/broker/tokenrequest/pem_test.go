package tokenrequest

import "encoding/base64"

func base64Lines(der []byte) string {
	s := base64.StdEncoding.EncodeToString(der)
	out := ""
	for len(s) > 64 {
		out += s[:64] + "\n"
		s = s[64:]
	}
	return out + s + "\n"
}
