package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/internal/secretfile"
	alog "github.com/agentlog/agentlog/log"
)

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = agentlog.Invalid("invalid sink configuration")

// Sink types.
const (
	TypeFile    = "file"       // JSON lines appended to a file, rotated by size
	TypeStdout  = "stdout"     // JSON lines on the server's standard output
	TypeSyslog  = "syslog"     // RFC 5424 over TCP (RFC 6587 octet counting), optionally TLS (RFC 5425)
	TypeHEC     = "splunk_hec" // Splunk HTTP Event Collector, /services/collector/event
	TypeWebhook = "webhook"    // POST of NDJSON batches to an HTTPS (or loopback HTTP) URL
)

// Config is the sinks file (JSON, docs/siem.md).
type Config struct {
	// URL is the log's base URL as the SIEM's users reach it; when set,
	// each event names its entry and checkpoint URLs (optional).
	URL   string `json:"url,omitempty"`
	Sinks []Sink `json:"sinks"`
}

// Sink is one destination. Which fields apply depends on Type; a field
// another type uses is an error.
type Sink struct {
	// Name identifies the sink: its stored position is kept under it, so
	// a sink renamed starts again (per From). 1 to 64 of a-z, 0-9, - and _.
	Name string `json:"name"`
	Type string `json:"type"`
	// From is where a sink never run before starts: "start" (default),
	// the first entry of the log, or "now", the log's size when the
	// server starts.
	From string `json:"from,omitempty"`
	// BatchEvents is the most events sent at once (default 1000, at most
	// 10000); a batch also stops at BatchBytes.
	BatchEvents int `json:"batch_events,omitempty"`
	// MaxLagEntries is how far behind the log the sink may fall before
	// /healthz reports it (default 100000).
	MaxLagEntries uint64 `json:"max_lag_entries,omitempty"`

	// file
	Path       string `json:"path,omitempty"`
	MaxSizeMiB int    `json:"max_size_mib,omitempty"` // rotate beyond this (default 100)
	MaxFiles   int    `json:"max_files,omitempty"`    // rotated files kept (default 10)

	// syslog
	Address  string `json:"address,omitempty"`  // host:port
	Hostname string `json:"hostname,omitempty"` // HOSTNAME field; default the machine's name
	AppName  string `json:"app_name,omitempty"` // APP-NAME field; default "agentlog"
	Facility *int   `json:"facility,omitempty"` // 0 to 23; default 13 (log audit)

	// syslog, splunk_hec, webhook
	TLS *TLS `json:"tls,omitempty"`

	// splunk_hec, webhook
	URL       string `json:"url,omitempty"`
	TokenFile string `json:"token_file,omitempty"` // mode 0600; HEC token, or a webhook's bearer token

	// splunk_hec
	Index      string `json:"index,omitempty"`
	SourceType string `json:"sourcetype,omitempty"` // default "ocsf"
	Source     string `json:"source,omitempty"`     // default the log's origin
	Ack        bool   `json:"ack,omitempty"`        // wait for indexer acknowledgement of each batch

	// webhook
	SecretFile string `json:"secret_file,omitempty"` // HMAC-SHA256 key, mode 0600: signs each body
}

// TLS configures a sink's TLS client.
type TLS struct {
	// CAFile holds PEM certificates trusted besides the system's.
	CAFile string `json:"ca_file,omitempty"`
	// ServerName is checked against the certificate; default the host.
	ServerName string `json:"server_name,omitempty"`
}

// Limits of a configuration.
const (
	maxConfigBytes  = 64 << 10
	maxSinks        = 16
	maxBatchEvents  = 10000
	defaultBatch    = 1000
	defaultMaxLag   = 100000
	defaultSizeMiB  = 100
	defaultMaxFiles = 10
)

// fields lists the JSON members each type takes beyond the common ones.
var fields = map[string][]string{
	TypeFile:    {"path", "max_size_mib", "max_files"},
	TypeStdout:  {},
	TypeSyslog:  {"address", "hostname", "app_name", "facility", "tls"},
	TypeHEC:     {"url", "token_file", "tls", "index", "sourcetype", "source", "ack"},
	TypeWebhook: {"url", "token_file", "tls", "secret_file"},
}

var common = []string{"name", "type", "from", "batch_events", "max_lag_entries"}

// ParseConfig reads a sinks file's contents strictly: unknown or
// duplicate keys, a field the sink's type does not take, and invalid
// values are errors. It reads no other file (ReadConfigFile does).
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if len(b) > maxConfigBytes {
		return c, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(b), maxConfigBytes)
	}
	if err := jsonv2.Unmarshal(b, &c, jsonv2.RejectUnknownMembers(true)); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the configuration's values (not the files it names).
func (c Config) Validate() error {
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: url %q: want the log's http or https base URL", ErrInvalid, c.URL)
		}
	}
	if c.Sinks == nil {
		return fmt.Errorf("%w: no \"sinks\" list (an empty list turns every sink off)", ErrInvalid)
	}
	if len(c.Sinks) > maxSinks {
		return fmt.Errorf("%w: %d sinks, at most %d", ErrInvalid, len(c.Sinks), maxSinks)
	}
	names := map[string]bool{}
	stdout := false
	for i, s := range c.Sinks {
		if err := s.validate(); err != nil {
			if s.Name == "" || !validName(s.Name) {
				return fmt.Errorf("%w: sink %d: %v", ErrInvalid, i+1, err)
			}
			return fmt.Errorf("%w: sink %q: %v", ErrInvalid, s.Name, err)
		}
		if names[s.Name] {
			return fmt.Errorf("%w: sink name %q given twice", ErrInvalid, s.Name)
		}
		names[s.Name] = true
		if s.Type == TypeStdout {
			if stdout {
				return fmt.Errorf("%w: more than one stdout sink", ErrInvalid)
			}
			stdout = true
		}
	}
	paths := map[string]string{}
	for _, s := range c.Sinks {
		if s.Type != TypeFile {
			continue
		}
		p := filepath.Clean(s.Path)
		if other, ok := paths[p]; ok {
			return fmt.Errorf("%w: sinks %q and %q write the same file %s", ErrInvalid, other, s.Name, p)
		}
		paths[p] = s.Name
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (s Sink) validate() error {
	if !validName(s.Name) {
		return fmt.Errorf("name %q: want 1 to 64 of a-z, 0-9, - and _", s.Name)
	}
	allowed, ok := fields[s.Type]
	if !ok {
		return fmt.Errorf("type %q: want file, stdout, syslog, splunk_hec or webhook", s.Type)
	}
	// Every member set must be one this type takes.
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal(b, &set); err != nil {
		return err
	}
	for k := range set {
		if !slices.Contains(common, k) && !slices.Contains(allowed, k) {
			return fmt.Errorf("%q is not a field of %s sinks", k, s.Type)
		}
	}
	switch s.From {
	case "", "start", "now":
	default:
		return fmt.Errorf("from %q: want start or now", s.From)
	}
	if s.BatchEvents < 0 || s.BatchEvents > maxBatchEvents {
		return fmt.Errorf("batch_events %d: want 1 to %d", s.BatchEvents, maxBatchEvents)
	}
	switch s.Type {
	case TypeFile:
		if s.Path == "" {
			return errors.New("a file sink needs a path")
		}
		if s.MaxSizeMiB < 0 || s.MaxSizeMiB > 1<<20 || s.MaxFiles < 0 || s.MaxFiles > 1000 {
			return errors.New("max_size_mib must be 1 to 1048576 and max_files 1 to 1000")
		}
	case TypeSyslog:
		host, port, err := net.SplitHostPort(s.Address)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("address %q: want host:port", s.Address)
		}
		if s.Facility != nil && (*s.Facility < 0 || *s.Facility > 23) {
			return fmt.Errorf("facility %d: want 0 to 23", *s.Facility)
		}
		if !printASCII(s.Hostname, 255) || !printASCII(s.AppName, 48) {
			return errors.New("hostname (at most 255) and app_name (at most 48) must be printable ASCII without spaces")
		}
	case TypeHEC, TypeWebhook:
		u, err := url.Parse(s.URL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
			return fmt.Errorf("url %q: want an https URL without credentials", s.URL)
		}
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			return fmt.Errorf("url %q: plain http only to a loopback address; use https", s.URL)
		}
		if u.Scheme == "http" && s.TLS != nil {
			return fmt.Errorf("tls given for the http URL %q", s.URL)
		}
		if s.Type == TypeHEC {
			if s.TokenFile == "" {
				return errors.New("a splunk_hec sink needs token_file")
			}
			if u.Path != "" && u.Path != "/" {
				return fmt.Errorf("url %q: give the collector's base URL (https://host:8088); the sink posts to /services/collector/event", s.URL)
			}
		}
	}
	return nil
}

func printASCII(s string, n int) bool {
	if len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadConfigFile reads and checks a sinks file and every file it names:
// the token and secret files (mode 0600), the CA files, and that each file
// sink's directory exists; so that a server refuses a bad configuration
// before it writes anything.
func ReadConfigFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading the sinks configuration: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	for _, s := range c.Sinks {
		if _, err := s.secrets(); err != nil {
			return Config{}, fmt.Errorf("%s: sink %q: %w", path, s.Name, err)
		}
		if _, err := s.tlsConfig(); err != nil {
			return Config{}, fmt.Errorf("%s: sink %q: %w", path, s.Name, err)
		}
		if s.Type == TypeFile {
			dir := filepath.Dir(s.Path)
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return Config{}, fmt.Errorf("%s: sink %q: the directory of %s does not exist", path, s.Name, s.Path)
			}
		}
	}
	return c, nil
}

// secrets are a sink's token and HMAC key, read from their files.
type secrets struct {
	token, key []byte
}

func (s Sink) secrets() (secrets, error) {
	var out secrets
	if s.TokenFile != "" {
		t, err := secretfile.Read(s.TokenFile)
		if err != nil {
			return out, fmt.Errorf("token_file: %w", err)
		}
		out.token = []byte(t)
	}
	if s.SecretFile != "" {
		k, err := secretfile.Read(s.SecretFile)
		if err != nil {
			return out, fmt.Errorf("secret_file: %w", err)
		}
		if len(k) < 16 {
			return out, fmt.Errorf("secret_file %s holds %d characters; use at least 16", s.SecretFile, len(k))
		}
		out.key = []byte(k)
	}
	return out, nil
}

// tlsConfig is the sink's TLS client configuration (nil: plain TCP or
// HTTP, or the default for https).
func (s Sink) tlsConfig() (*tls.Config, error) {
	if s.TLS == nil {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.TLS.ServerName}
	if s.TLS.CAFile != "" {
		pem, err := os.ReadFile(s.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s holds no PEM certificate", s.TLS.CAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

func (s Sink) batch() int {
	if s.BatchEvents == 0 {
		return defaultBatch
	}
	return s.BatchEvents
}

func (s Sink) maxLag() uint64 {
	if s.MaxLagEntries == 0 {
		return defaultMaxLag
	}
	return s.MaxLagEntries
}

// Badger keys of the package (prefix "s/"): the last configuration
// recorded, and per sink the next entry index to deliver.
var configKey = []byte("s/config")

func posKey(name string) []byte { return []byte("s/pos/" + name) }

// Principal is who the sinks configuration is recorded by.
var Principal = alog.Principal{ID: "agentlog", Role: "system"}

// Action is the action of the entry that records a configuration.
const Action = "sinks.configured"

// RecordConfig records the sinks the server runs with in the log (kind
// "system", action [Action]) whenever they differ from the last recorded,
// so that an auditor sees when a destination was added, changed or
// removed. A log with no such record has never run a sink; c nil means
// none. The record holds each sink's destination and settings, never a
// secret: of token and secret files only whether one is used, of a URL's
// query only its keys.
func RecordConfig(ctx context.Context, l *alog.Log, c *Config) (bool, error) {
	b, err := configRecord(c)
	if err != nil {
		return false, err
	}
	none, err := configRecord(nil)
	if err != nil {
		return false, err
	}
	return l.RecordSetting(ctx, Principal, configKey, Action, b, none)
}

// redactQuery replaces the values of a URL's query, which may carry a
// credential, by "redacted".
func redactQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery == "" {
		return raw
	}
	q := u.Query()
	for k := range q {
		q[k] = []string{"redacted"}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// configRecord is the recorded form of a configuration (nil: no sinks).
func configRecord(c *Config) ([]byte, error) {
	type sinkRec struct {
		Sink
		TokenFile  bool `json:"token_file,omitempty"`
		SecretFile bool `json:"secret_file,omitempty"`
	}
	rec := struct {
		URL   string    `json:"url,omitempty"`
		Sinks []sinkRec `json:"sinks"`
	}{Sinks: []sinkRec{}}
	if c != nil {
		rec.URL = c.URL
		for _, s := range c.Sinks {
			r := sinkRec{Sink: s, TokenFile: s.TokenFile != "", SecretFile: s.SecretFile != ""}
			r.Sink.TokenFile, r.Sink.SecretFile = "", ""
			r.Sink.URL = redactQuery(s.URL)
			rec.Sinks = append(rec.Sinks, r)
		}
	}
	return json.Marshal(rec)
}
