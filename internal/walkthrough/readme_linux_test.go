package walkthrough

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Documents walked through, in order: the README, then every document in
// docs/ (sorted by name), sharing one shell session and its servers.
func documents(t *testing.T, root string) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(docs)
	out := []string{"README.md"}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		out = append(out, rel)
	}
	return out
}

func parseAll(t *testing.T, root string) []Block {
	t.Helper()
	var all []Block
	for _, d := range documents(t, root) {
		md, err := os.ReadFile(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := Parse(d, md)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, blocks...)
	}
	return all
}

const childEnv = "AGENTLOG_WALKTHROUGH_DIR"

// TestREADME runs the shell blocks of README.md and docs/*.md as written,
// in order, in a fresh copy of the repository, in a network namespace of
// its own (see the package doc): the README's promise, as a test.
func TestREADME(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		walk(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("runs the README's walkthroughs, which build and start the servers")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseAll(t, root)

	// Services the sections declare, started in this (the host's) network.
	var ports []int
	seen := map[string]bool{}
	for _, b := range blocks {
		if b.Skip != "" {
			continue
		}
		for _, s := range b.Needs {
			if s.Port != 0 {
				ports = append(ports, s.Port)
			}
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			script := filepath.Join(root, ".ci", "services", s.Name+".sh")
			cmd := exec.Command("bash", script)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s needs service %s: %s: %v\n%s", b.Where(), s.Name, script, err, out)
			}
		}
	}

	copyDir := filepath.Join(t.TempDir(), "agentlog")
	copyRepo(t, root, copyDir)

	cmd := exec.Command(os.Args[0], "-test.run=^TestREADME$", "-test.v", "-test.timeout=15m")
	cmd.Env = append(os.Environ(), childEnv+"="+copyDir)
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if os.Getuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	cmd.SysProcAttr = attr
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the walkthrough in a network namespace of its own (root, or unprivileged user namespaces, are needed): %v", err)
	}
	for _, p := range ports {
		ln, err := Forward(cmd.Process.Pid, p)
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("forwarding port %d into the walkthrough: %v", p, err)
		}
		defer ln.Close()
	}
	stdin.Write([]byte("go\n"))
	stdin.Close()
	err = cmd.Wait()
	if testing.Verbose() || err != nil {
		t.Logf("walkthrough output:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("the walkthrough failed: %v", err)
	}
}

// walk runs in the network namespace: the walkthrough itself.
func walk(t *testing.T, dir string) {
	// Wait until the parent has set up what the blocks need.
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("waiting for the go-ahead: %v", err)
	}
	stop, err := IsolateNetwork()
	if stop != nil {
		defer stop()
	}
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, childEnv+"=") && !strings.HasPrefix(kv, "GOFLAGS=") {
			env = append(env, kv)
		}
	}
	// Everything the builds need is in the module cache: no network.
	env = append(env, "GOPROXY=off", "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local")
	r := &Runner{Dir: dir, Env: env}
	defer func() {
		if err := r.Stop(time.Minute); err != nil {
			t.Error(err)
		}
	}()
	for _, b := range parseAll(t, dir) {
		if b.Skip != "" {
			t.Logf("%s: skipped (%s)", b.Where(), b.Skip)
			continue
		}
		start := time.Now()
		out, err := r.Run(&b)
		if err != nil {
			t.Fatalf("%v\n--- block:\n%s--- output:\n%s\n%s", err, b.Text, out, r.Background())
		}
		t.Logf("%s: ok in %v", b.Where(), time.Since(start).Round(time.Millisecond))
	}
}

// copyRepo copies the files git tracks (or would track) in root to dir:
// a fresh clone of the working tree, without what earlier runs left.
func copyRepo(t *testing.T, root, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("listing the repository's files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, f)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}
