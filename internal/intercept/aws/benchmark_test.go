package aws

import (
	"io"
	"testing"
)

// BenchmarkClassify classifies what the AWS SDK sends, as the pipeline
// does: through the Protocol, with the body offered by a function that
// returns it already read (the pipeline reads it once, within its limits).
func BenchmarkClassify(b *testing.B) {
	calls := map[string]string{
		"s3 GetObject":     "s3 GetObject",
		"query AssumeRole": "sts AssumeRole",   // a form body
		"json GetItem":     "dynamodb GetItem", // an X-Amz-Target and a JSON body
	}
	cases := map[string]sdkCase{}
	for _, c := range sdkCases() {
		cases[c.name] = c
	}
	p := New(Config{})
	for _, name := range []string{"s3 GetObject", "query AssumeRole", "json GetItem"} {
		b.Run(name, func(b *testing.B) {
			c, ok := cases[calls[name]]
			if !ok {
				b.Fatalf("no SDK case %q", calls[name])
			}
			r := mustRequest(b, sdkRequest(b, "us-west-2", c.call))
			raw, err := io.ReadAll(r.Body)
			if err != nil {
				b.Fatal(err)
			}
			body := func() ([]byte, error) { return raw, nil }
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Classify(r, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
