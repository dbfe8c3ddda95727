package mirror_test

import (
	"strings"
	"testing"

	"github.com/agentlog/agentlog/log/mirror"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct{ url, bucket, prefix string }{
		{"s3://audit-logs", "audit-logs", ""},
		{"s3://audit-logs/", "audit-logs", ""},
		{"s3://audit.logs-2/prod/eu/", "audit.logs-2", "prod/eu/"},
		{"s3://abc/log", "abc", "log/"},
		{"s3://Legacy_Bucket/log", "Legacy_Bucket", "log/"}, // us-east-1 before 2018
	} {
		b, p, err := mirror.ParseURL(c.url)
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", c.url, b, p, err, c.bucket, c.prefix)
		}
	}
	for url, want := range map[string]string{
		"https://audit-logs":                          "want s3://",
		"s3:///log":                                   "no bucket name",
		"s3://ab":                                     "3 to 255",
		"s3://" + strings.Repeat("a", 256):            "3 to 255",
		"s3://audit logs":                             "only letters",
		"s3://audit?logs":                             "only letters",
		"s3://audit%2flogs":                           "only letters",
		"s3://192.168.1.10":                           "IP address",
		"s3://audit-logs/a//b":                        "empty segment",
		"s3://audit-logs/a/../b":                      `".." segment`,
		"s3://audit-logs/./b":                         `"." segment`,
		"s3://audit-logs/a\nb":                        "printable",
		"s3://audit-logs/a\xffb":                      "printable",
		"s3://audit-logs/" + strings.Repeat("a", 513): "512 bytes",
	} {
		if _, _, err := mirror.ParseURL(url); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURL(%q): %v, want an error saying %q", url, err, want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	f.Add("s3://audit-logs/prod/eu")
	f.Add("s3://a..b/../x")
	f.Fuzz(func(t *testing.T, u string) {
		b, p, err := mirror.ParseURL(u)
		if err != nil {
			return
		}
		if b == "" || strings.ContainsAny(b, "/ ") || (p != "" && !strings.HasSuffix(p, "/")) || strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
			t.Fatalf("ParseURL(%q) = %q, %q", u, b, p)
		}
		// What it accepts it accepts again in its own form.
		again := "s3://" + b + "/" + p
		if b2, p2, err := mirror.ParseURL(again); err != nil || b2 != b || p2 != p {
			t.Fatalf("ParseURL(%q) = %q, %q, %v; from %q", again, b2, p2, err, u)
		}
	})
}
