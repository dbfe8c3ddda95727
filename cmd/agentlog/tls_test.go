package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/internal/tlsfile"
	"github.com/agentlog/agentlog/witness"
)

// TestServeTLS runs the log and a witness over HTTPS with a self-signed
// certificate that the client processes trust through SSL_CERT_FILE: an
// agent is provisioned, appends and is verified, and the log collects the
// witness's cosignature over TLS. Clients that do not trust the
// certificate, plain HTTP to the TLS port and a readable key file fail.
func TestServeTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binaries")
	}
	bin, wbin := agentlogBinary(t), witnessBinary(t)
	ntp := ntptest.Start(t, 0)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := tlsfile.WriteSelfSigned(cert, key, "agentlog-e2e"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", cert) // inherited by every process started below

	const origin = "e2e.example/tls"
	data := t.TempDir()
	keys, _, err := checkpoint.LoadOrCreateKeys(data, origin)
	if err != nil {
		t.Fatal(err)
	}
	wdir := t.TempDir()
	w := startWitnessProc(t, wbin, "--data", wdir, "--listen", "127.0.0.1:0", "--name", "w.e2e.example", "--log", keys.LogVKey,
		"--ntp", ntp.Addr(), "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(w.url, "https://") {
		t.Fatalf("witness serves %s", w.url)
	}
	wpub, err := os.ReadFile(filepath.Join(wdir, witness.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy")
	if err := os.WriteFile(policy, []byte("log "+keys.LogVKey+"\nwitness W "+strings.TrimSpace(string(wpub))+" "+w.url+"\nquorum W\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, bin, "--data", data, "--origin", origin, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms",
		"--tls-cert", cert, "--tls-key", key, "--witness-policy", policy)
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("log serves %s", srv.url)
	}

	run := func(env []string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		if env != nil {
			cmd.Env = env
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	admin := filepath.Join(data, "admin.token")
	akey := filepath.Join(dir, "bot.key")
	if out, err := run(nil, "agent", "register", "--server", srv.url, "--admin-token-file", admin, "--id", "tls-bot", "--key-out", akey); err != nil {
		t.Fatalf("agent register over TLS: %v\n%s", err, out)
	}
	out, err := run(nil, "session", "open", "--server", srv.url, "--agent-key", akey, "--task", "tls")
	if err != nil {
		t.Fatalf("session open over TLS: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sess := lines[len(lines)-1]
	if out, err := run(nil, "append", "--server", srv.url, "--session-token", sess, "--action", "tls.check", "--resource", "r/1"); err != nil {
		t.Fatalf("append over TLS: %v\n%s", err, out)
	}
	// The witness cosigns over TLS: verify with a policy that requires it
	// succeeds once a cosigned checkpoint covers the entry.
	waitFor(t, "a checkpoint cosigned over TLS to cover entry 3", func() bool {
		out, err = run(nil, "verify", "--server", srv.url, "--log-key", filepath.Join(data, "log.pub"), "--policy", policy,
			"--index", "3", "--token-file", admin)
		return err == nil
	})

	// A client without the certificate in its roots refuses the server.
	var bare []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSL_CERT_FILE=") {
			bare = append(bare, kv)
		}
	}
	if out, err := run(bare, "verify", "--server", srv.url, "--log-key", filepath.Join(data, "log.pub")); err == nil || !strings.Contains(out, "certificate") || !strings.Contains(out, "SSL_CERT_FILE=") {
		t.Fatalf("a client that does not trust the certificate (want an error naming SSL_CERT_FILE): %v\n%s", err, out)
	}
	// Plain HTTP to the TLS port is refused.
	if out, err := run(nil, "verify", "--server", strings.Replace(srv.url, "https://", "http://", 1), "--log-key", filepath.Join(data, "log.pub")); err == nil {
		t.Fatalf("plain HTTP to the TLS port succeeded:\n%s", out)
	}
	// A key file others can read is refused at start, with a sentence.
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "data")
	out, err = run(nil, "serve", "--data", fresh, "--listen", "127.0.0.1:0", "--ntp", ntp.Addr(), "--tls-cert", cert, "--tls-key", key)
	if err == nil || !strings.Contains(out, "chmod 600") {
		t.Fatalf("serve with a readable TLS key: %v\n%s", err, out)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("a refused start created its data directory (%v)", err)
	}
	out, err = run(nil, "serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--ntp", ntp.Addr(), "--tls-cert", cert)
	if err == nil || !strings.Contains(out, "key file") {
		t.Fatalf("serve with --tls-cert only: %v\n%s", err, out)
	}
}
