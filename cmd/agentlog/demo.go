package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/clock"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/witness"
)

const demoOrigin = "demo.agentlog.local/log"

// runDemo is "agentlog demo": a log and a witness on loopback, two agents
// with scopes and approved configurations, a scripted workload with one out-of-scope and one off-hours
// action, then what an auditor sees. Every step is the CLI verb it prints,
// run in this process; everything is written under --dir.
func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	dir := fs.String("dir", "agentlog-demo", "new directory for everything the demo creates (log and witness data, keys, tokens, evidence)")
	var ntpServers cmdline.MultiFlag
	fs.Var(&ntpServers, "ntp", "NTP server `HOST[:PORT]` for the log (repeatable; default the log's)")
	keep := fs.Bool("keep-running", false, "after the story, keep the log and the witness running until Ctrl-C, to explore them")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if des, err := os.ReadDir(*dir); err == nil && len(des) > 0 {
		return fmt.Errorf("%s already exists and is not empty; remove it (rm -rf %s) or choose another --dir", *dir, *dir)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	d := &demo{dir: *dir, out: stdout}
	step := func(title string) { fmt.Fprintf(stdout, "\n== %s\n", title) }

	// The witness, in this process: its own key, state and HTTP server.
	step("a witness and a log on loopback")
	wsrv, wurl, wpub, err := startDemoWitness(filepath.Join(*dir, "witness"))
	if err != nil {
		return err
	}
	defer wsrv.Close()
	// The log's keys first, so that the policy can name them.
	logDir := filepath.Join(*dir, "log")
	keys, _, err := checkpoint.LoadOrCreateKeys(logDir, demoOrigin)
	if err != nil {
		return err
	}
	policy := filepath.Join(*dir, "policy.txt")
	pol := fmt.Sprintf("log %s\nwitness W1 %s %s\nquorum W1\n", keys.LogVKey, wpub, wurl)
	if err := os.WriteFile(policy, []byte(pol), 0o644); err != nil {
		return err
	}
	serveArgs := []string{"serve", "--data", logDir, "--listen", "127.0.0.1:0", "--origin", demoOrigin, "--witness-policy", policy}
	for _, n := range ntpServers {
		serveArgs = append(serveArgs, "--ntp", n)
	}
	logProc, url, err := startDemoLog(self, serveArgs, filepath.Join(*dir, "log.out"))
	if err != nil {
		return err
	}
	defer logProc.stop()
	d.server = url
	fmt.Fprintf(stdout, "log     %s (origin %s), data in %s, output in %s\n", url, demoOrigin, logDir, filepath.Join(*dir, "log.out"))
	fmt.Fprintf(stdout, "witness %s (key %s), data in %s\n", wurl, strings.Fields(wpub)[0], filepath.Join(*dir, "witness"))
	fmt.Fprintf(stdout, "policy  %s: checkpoints need the witness's cosignature\n", policy)
	start := time.Now().UTC().Add(-time.Second).Truncate(time.Second)

	admin := filepath.Join(logDir, "admin.token")
	step("the admin provisions two agents with declared scopes and approved configurations")
	now := time.Now().UTC()
	away := fmt.Sprintf("%02d:00-%02d:00", (now.Hour()+2)%24, (now.Hour()+4)%24)
	billingKey, supportKey := filepath.Join(*dir, "billing-bot.key"), filepath.Join(*dir, "support-bot.key")
	// Each agent's configuration (model, prompts) is recorded at
	// registration as its first approved change; sessions declare it and
	// every action carries its digest.
	billingCfg, supportCfg := filepath.Join(*dir, "billing-bot.config.json"), filepath.Join(*dir, "support-bot.config.json")
	for f, c := range map[string]string{
		billingCfg: `{"model": {"provider": "anthropic", "name": "claude-sonnet", "version": "4.5"}, "prompts": {"system": {"text": "You issue refunds for billing disputes. Never touch anything but payments and customer records."}}}` + "\n",
		supportCfg: `{"model": {"provider": "anthropic", "name": "claude-haiku", "version": "4.5"}, "prompts": {"system": {"text": "You read and answer support tickets."}}}` + "\n",
	} {
		if err := os.WriteFile(f, []byte(c), 0o644); err != nil {
			return err
		}
	}
	if _, err := d.cli("agent", "register", "--admin-token-file", admin, "--id", "billing-bot", "--owner", "payments-team",
		"--scope", "actions=db.query,payments.refund;tools=sql,stripe;resources=customers/*,charges/*", "--config", billingCfg, "--key-out", billingKey); err != nil {
		return err
	}
	if _, err := d.cli("agent", "register", "--admin-token-file", admin, "--id", "support-bot", "--owner", "support-team",
		"--scope", "actions=tickets.*;tools=zendesk;hours="+away+";tz=UTC", "--config", supportCfg, "--key-out", supportKey); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "(support-bot's declared hours, %s UTC, exclude now: its next action is off-hours)\n", away)

	step("the agents work: billing-bot stays in scope three times, then runs a shell; support-bot acts off-hours")
	bs, err := d.cli("session", "open", "--agent-key", billingKey, "--task", "refund-7731", "--config", billingCfg)
	if err != nil {
		return err
	}
	billing := strings.TrimSpace(bs)
	for _, a := range [][]string{
		{"--action", "db.query", "--tool", "sql", "--resource", "customers/42", "--outcome", "success"},
		{"--action", "payments.refund", "--tool", "stripe", "--resource", "charges/ch_42", "--outcome", "success"},
		{"--action", "db.query", "--tool", "sql", "--resource", "customers/7", "--outcome", "success"},
	} {
		if _, err := d.cli(append([]string{"append", "--session-token", billing}, a...)...); err != nil {
			return err
		}
	}
	out, err := d.cli("append", "--session-token", billing, "--action", "shell.exec", "--tool", "bash", "--resource", "/etc/passwd", "--outcome", "success")
	if err != nil {
		return err
	}
	var shellIndex uint64
	if _, err := fmt.Sscanf(out, "index %d", &shellIndex); err != nil {
		return fmt.Errorf("reading the index of the append: %q", out)
	}
	if _, err := d.cli("session", "close", "--session-token", billing); err != nil {
		return err
	}
	ss, err := d.cli("session", "open", "--agent-key", supportKey, "--task", "ticket-981", "--config", supportCfg)
	if err != nil {
		return err
	}
	if _, err := d.cli("append", "--session-token", strings.TrimSpace(ss), "--action", "tickets.read", "--tool", "zendesk", "--resource", "tickets/981", "--outcome", "success"); err != nil {
		return err
	}

	step("an auditor gets a token of their own")
	auditor := filepath.Join(*dir, "auditor.token")
	if _, err := d.cli("token", "create", "--admin-token-file", admin, "--role", "auditor", "--name", "alice", "--out", auditor); err != nil {
		return err
	}

	step("the auditor asks: what did billing-bot do?")
	from := start.Format(time.RFC3339)
	if _, err := d.cli("query", "--token-file", auditor, "--agent", "billing-bot", "--from", from); err != nil {
		return err
	}

	step("the configurations the agents ran under, each approved and on record")
	if _, err := d.cli("change", "list", "--token-file", auditor); err != nil {
		return err
	}

	step("the alerts the anomaly rules raised (recorded in the log)")
	if err := d.waitAlerts(auditor, 2); err != nil {
		return err
	}
	if _, err := d.cli("query", "--token-file", auditor, "--kind", "alert", "--from", from); err != nil {
		return err
	}

	step("the shell command's inclusion proof, against a checkpoint the witness cosigned")
	if _, err := d.cli("verify", "--log-key", filepath.Join(logDir, "log.pub"), "--time-key", filepath.Join(logDir, "time.pub"),
		"--policy", policy, "--index", fmt.Sprint(shellIndex), "--token-file", auditor); err != nil {
		return err
	}

	step("evidence of everything billing-bot did, exported, then verified offline")
	evDir := filepath.Join(*dir, "evidence")
	if _, err := d.cli("evidence", "export", "--token-file", auditor, "--agent", "billing-bot", "--from", from,
		"--log-key", filepath.Join(logDir, "log.pub"), "--policy", policy, "--out", evDir); err != nil {
		return err
	}
	if _, err := d.cliOffline("evidence", "verify", evDir, "--log-key", filepath.Join(logDir, "log.pub"), "--policy", policy); err != nil {
		return err
	}

	step("where to look next")
	if resp, err := http.Get(url + "/console/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Fprintf(stdout, "console   %s/console/ (sign in with the token in %s)\n", url, auditor)
		}
	}
	fmt.Fprintf(stdout, "summary   %s (open it in a browser)\n", filepath.Join(evDir, "summary.html"))
	fmt.Fprintf(stdout, "health    curl -s %s/healthz\n", url)
	if *keep {
		fmt.Fprintf(stdout, "\nThe log (%s) and the witness (%s) keep running; Ctrl-C stops them.\n", url, wurl)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		<-ctx.Done()
		stop()
	}
	if err := logProc.stop(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nEverything is in %s: the log's data (\"agentlog serve --data %s\" starts it again, without the witness,\n"+
		"which ran inside the demo), the witness's, the agents' keys, the auditor's token and the evidence. Remove it all with:\n  rm -rf %s\n", *dir, logDir, *dir)
	return nil
}

// demo runs CLI verbs in this process, printing each as a command line
// and then its output.
type demo struct {
	dir, server string
	out         io.Writer
}

func (d *demo) cli(args ...string) (string, error) {
	return d.run(append(args, "--server", d.server))
}

func (d *demo) cliOffline(args ...string) (string, error) { return d.run(args) }

func (d *demo) run(args []string) (string, error) {
	shown := make([]string, len(args))
	for i, a := range args {
		switch {
		case i > 0 && args[i-1] == "--session-token":
			shown[i] = "$SESSION"
		case strings.ContainsAny(a, " ;*$"):
			shown[i] = "'" + a + "'"
		default:
			shown[i] = a
		}
	}
	fmt.Fprintf(d.out, "$ agentlog %s\n", strings.Join(shown, " "))
	var out, errs bytes.Buffer
	code := run(args, &out, &errs)
	if args[0] == "session" && args[1] == "open" {
		// The credential is a secret: the demo keeps it, the screen does not.
		fmt.Fprintf(d.out, "%s(the session credential, on stdout)\n", errs.String())
	} else {
		d.out.Write(out.Bytes())
		if args[0] == "token" {
			d.out.Write(errs.Bytes())
		}
	}
	if code != 0 {
		return out.String(), fmt.Errorf("agentlog %s: exit %d: %s", args[0], code, strings.TrimSpace(errs.String()))
	}
	return out.String(), nil
}

// waitAlerts waits until the rules have recorded n alerts (they examine
// each committed action within moments).
func (d *demo) waitAlerts(tokenFile string, n int) error {
	tok, err := cmdline.ReadSecret(tokenFile)
	if err != nil {
		return err
	}
	c, err := client.New(d.server, client.WithToken(tok))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		got := 0
		p := map[string][]string{"kind": {"alert"}}
		if _, err := c.QueryAll(ctx, p, 0, func(client.QueryMatch) error { got++; return nil }); err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the anomaly rules recorded %d alerts in 30s, want %d", got, n)
		case <-tick.C:
		}
	}
}

// startDemoWitness runs a witness for the demo's log on a free loopback
// port, keeping its key and state in dir.
func startDemoWitness(dir string) (*http.Server, string, string, error) {
	clk := clock.New(clock.Config{})
	signer, _, err := witness.LoadOrCreateKey(dir, "witness.demo.agentlog.local/w1", clk.Now)
	if err != nil {
		return nil, "", "", err
	}
	pub, err := os.ReadFile(filepath.Join(dir, witness.PubFile))
	if err != nil {
		return nil, "", "", err
	}
	store, err := witness.OpenFileStore(filepath.Join(dir, "state"))
	if err != nil {
		return nil, "", "", err
	}
	keys, _, err := checkpoint.LoadOrCreateKeys(filepath.Join(filepath.Dir(dir), "log"), demoOrigin)
	if err != nil {
		return nil, "", "", err
	}
	w, err := witness.New(witness.Config{Signer: signer, Logs: map[string][]note.Verifier{demoOrigin: {keys.LogVerifier}}, Store: store})
	if err != nil {
		return nil, "", "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", "", err
	}
	hs := &http.Server{Handler: witness.NewServer(witness.ServerConfig{Witness: w, Clock: clk}), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	hs.RegisterOnShutdown(func() { store.Close() })
	return hs, "http://" + ln.Addr().String(), strings.TrimSpace(string(pub)), nil
}

// demoLog is the log server, run as "agentlog serve" in a child process.
type demoLog struct {
	cmd  *exec.Cmd
	done chan error
	out  *os.File
}

func startDemoLog(self string, args []string, outFile string) (*demoLog, string, error) {
	f, err := os.Create(outFile)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = f
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		f.Close()
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, "", err
	}
	p := &demoLog{cmd: cmd, done: make(chan error, 1), out: f}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			if rest, ok := strings.CutPrefix(line, "agentlog listening on "); ok {
				ready <- strings.Fields(rest)[0]
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case url := <-ready:
		return p, url, nil
	case err := <-p.done:
		f.Close()
		return nil, "", fmt.Errorf("the log server exited (%v); see %s", err, outFile)
	case <-time.After(time.Minute):
		p.stop()
		return nil, "", fmt.Errorf("the log server did not start within a minute; see %s", outFile)
	}
}

// stop ends the server with SIGTERM, as Ctrl-C would, and waits; calling
// it again does nothing.
func (p *demoLog) stop() error {
	if p.cmd == nil {
		return nil
	}
	defer func() { p.cmd = nil; p.out.Close() }()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("the log server stopped with %v", err)
		}
		return err
	case <-time.After(2 * time.Minute):
		p.cmd.Process.Kill()
		return errors.New("the log server did not stop within 2 minutes of SIGTERM")
	}
}
