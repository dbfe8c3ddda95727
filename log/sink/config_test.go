package sink

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	good := []string{
		`{"sinks": []}`,
		`{"sinks": [{"name": "a", "type": "file", "path": "/tmp/a.jsonl"}]}`,
		`{"sinks": [{"name": "s", "type": "syslog", "address": "siem.example:6514", "tls": {}, "facility": 4, "hostname": "h", "app_name": "a"}]}`,
		`{"sinks": [{"name": "h", "type": "splunk_hec", "url": "https://splunk.example:8088", "token_file": "t", "ack": true, "index": "main", "sourcetype": "ocsf", "source": "s"}]}`,
		`{"sinks": [{"name": "w", "type": "webhook", "url": "http://127.0.0.1:9/in", "secret_file": "k", "token_file": "t"}]}`,
		`{"url": "https://log.example", "sinks": [{"name": "a-1_b", "type": "file", "path": "x.jsonl", "max_size_mib": 5, "max_files": 3, "from": "now", "batch_events": 10, "max_lag_entries": 5}, {"name": "out", "type": "stdout"}]}`,
	}
	for _, s := range good {
		if _, err := ParseConfig([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := map[string]string{
		`{}`:                        `no "sinks" list`,
		`{"sinks": [], "extra": 1}`: `unknown`,
		`{"sinks": [{"name": "a", "type": "file", "path": "p", "bogus": 1}]}`:                                   `unknown`,
		`{"sinks": [{"name": "a", "type": "file", "path": "p", "path": "q"}]}`:                                  `duplicate`,
		`{"sinks": [{"name": "A", "type": "file", "path": "p"}]}`:                                               `name "A"`,
		`{"sinks": [{"name": "", "type": "stdout"}]}`:                                                           `sink 1`,
		`{"sinks": [{"name": "a", "type": "kafka"}]}`:                                                           `type "kafka"`,
		`{"sinks": [{"name": "a", "type": "file"}]}`:                                                            `needs a path`,
		`{"sinks": [{"name": "a", "type": "stdout", "path": "p"}]}`:                                             `"path" is not a field of stdout`,
		`{"sinks": [{"name": "a", "type": "file", "path": "p", "from": "yesterday"}]}`:                          `from "yesterday"`,
		`{"sinks": [{"name": "a", "type": "file", "path": "p", "batch_events": 10001}]}`:                        `batch_events`,
		`{"sinks": [{"name": "a", "type": "file", "path": "p", "max_size_mib": -1}]}`:                           `max_size_mib`,
		`{"sinks": [{"name": "a", "type": "file", "path": "p"}, {"name": "a", "type": "stdout"}]}`:              `given twice`,
		`{"sinks": [{"name": "a", "type": "file", "path": "p"}, {"name": "b", "type": "file", "path": "./p"}]}`: `same file`,
		`{"sinks": [{"name": "a", "type": "stdout"}, {"name": "b", "type": "stdout"}]}`:                         `more than one stdout`,
		`{"url": "ftp://x", "sinks": []}`:                                                                       `url "ftp://x"`,
		`{"sinks": [{"name": "a", "type": "file", "path": "p", "max_lag_entries": -1}]}`:                        `max_lag_entries`,
		`[]`: `invalid sink configuration`,
		`{"sinks": [{"name": "w", "type": "webhook", "url": "http://hook.example/in"}]}`:                                   `plain http only to a loopback`,
		`{"sinks": [{"name": "w", "type": "webhook", "url": "https://u:p@hook.example/in"}]}`:                              `without credentials`,
		`{"sinks": [{"name": "w", "type": "webhook", "url": "http://127.0.0.1/in", "tls": {}}]}`:                           `tls given for the http URL`,
		`{"sinks": [{"name": "h", "type": "splunk_hec", "url": "https://splunk.example:8088"}]}`:                           `needs token_file`,
		`{"sinks": [{"name": "h", "type": "splunk_hec", "url": "https://s:8088/services/collector", "token_file": "t"}]}`:  `base URL`,
		`{"sinks": [{"name": "h", "type": "splunk_hec", "url": "https://s:8088", "token_file": "t", "secret_file": "k"}]}`: `"secret_file" is not a field of splunk_hec`,
		`{"sinks": [{"name": "s", "type": "syslog", "address": "nohost"}]}`:                                                `want host:port`,
		`{"sinks": [{"name": "s", "type": "syslog", "address": "h:514", "facility": 24}]}`:                                 `facility 24`,
		`{"sinks": [{"name": "s", "type": "syslog", "address": "h:514", "hostname": "a b"}]}`:                              `printable ASCII`,
		`{"sinks": [{"name": "s", "type": "syslog", "address": "h:514", "ack": true}]}`:                                    `"ack" is not a field of syslog`,
	}
	for s, want := range bad {
		_, err := ParseConfig([]byte(s))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", s, err, want)
		}
	}
}

func TestReadConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := ReadConfigFile(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	p := write("nodir.json", `{"sinks": [{"name": "a", "type": "file", "path": "`+filepath.Join(dir, "no", "x.jsonl")+`"}]}`)
	if _, err := ReadConfigFile(p); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing directory: %v", err)
	}
	p = write("ok.json", `{"sinks": [{"name": "a", "type": "file", "path": "`+filepath.Join(dir, "x.jsonl")+`"}]}`)
	if _, err := ReadConfigFile(p); err != nil {
		t.Error(err)
	}
	// Secret files: 0600, non-empty, and long enough for a key.
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("0123456789abcdef0123"), 0o644)
	short := write("short", "abc")
	for _, c := range []struct {
		s    Sink
		want string
	}{
		{Sink{TokenFile: loose}, "chmod 600"},
		{Sink{SecretFile: short}, "at least 16"},
		{Sink{TokenFile: filepath.Join(dir, "none")}, "no such file"},
	} {
		if _, err := c.s.secrets(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.s, err, c.want)
		}
	}
	if _, err := (Sink{TLS: &TLS{CAFile: short}}).tlsConfig(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA file: %v", err)
	}
}

// TestRecordHasNoSecrets: the recorded form says a token or secret file
// is used, never its path or content.
func TestRecordHasNoSecrets(t *testing.T) {
	c := &Config{Sinks: []Sink{{Name: "h", Type: TypeHEC, URL: "https://splunk.example:8088", TokenFile: "/secret/path/hec.token"},
		{Name: "w", Type: TypeWebhook, URL: "https://hook.example/in?key=s3cr3t-in-query&b=2", SecretFile: "/secret/path/hmac.key"}}}
	b, err := configRecord(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "/secret/path") || strings.Contains(string(b), "s3cr3t") {
		t.Fatalf("record holds a secret file's path or a URL's query: %s", b)
	}
	var rec struct {
		Sinks []map[string]any `json:"sinks"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Sinks[0]["token_file"] != true || rec.Sinks[1]["secret_file"] != true || rec.Sinks[0]["url"] != "https://splunk.example:8088" || rec.Sinks[1]["url"] != "https://hook.example/in?b=redacted&key=redacted" {
		t.Errorf("record %s", b)
	}
}

// FuzzParseConfig: the parser never panics, and what it accepts validates
// and records.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"sinks": [{"name": "a", "type": "file", "path": "/tmp/a.jsonl", "max_size_mib": 5}]}`))
	f.Add([]byte(`{"url": "https://x", "sinks": [{"name": "s", "type": "syslog", "address": "h:514", "tls": {"ca_file": "c"}}]}`))
	f.Add([]byte(`{"sinks": [{"name": "h", "type": "splunk_hec", "url": "https://h:8088", "token_file": "t", "ack": true}]}`))
	f.Add([]byte(`{"sinks": [{"name": "w", "type": "webhook", "url": "http://127.0.0.1:1/x", "secret_file": "k"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted, then invalid: %v", err)
		}
		if _, err := configRecord(&c); err != nil {
			t.Fatal(err)
		}
	})
}
