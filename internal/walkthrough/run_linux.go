package walkthrough

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of a block's timeout.
const (
	DefaultTimeout      = 2 * time.Minute
	DefaultReadyTimeout = 3 * time.Minute
)

// Runner runs blocks in order in one directory, sharing shell state.
type Runner struct {
	Dir string   // the working directory: the copy of the repository
	Env []string // the environment of every block

	state string // file holding the shell variables and directory
	bg    []*bgProc
}

type bgProc struct {
	b    *Block
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// syncBuffer is a buffer a process writes while the runner reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// prelude restores the state of the earlier blocks; save records it.
const prelude = `set -eo pipefail
[ -f "$AGENTLOG_WT_STATE" ] && . "$AGENTLOG_WT_STATE"
`

const save = `
__wt_save() {
	local __wt_n __wt_d __wt_f
	{
	for __wt_n in $(compgen -v); do
		[[ $__wt_n =~ ^(BASH.*|EUID|PPID|UID|SHELLOPTS|BASHOPTS|FUNCNAME|GROUPS|RANDOM|SRANDOM|SECONDS|LINENO|HISTCMD|PIPESTATUS|_|DIRSTACK|EPOCHREALTIME|EPOCHSECONDS|COMP_.*|OPTIND|OPTARG|OPTERR|IFS|PS[0-9]|PWD|OLDPWD|SHLVL|__wt_.*|AGENTLOG_WT_STATE)$ ]] && continue
		__wt_d=$(declare -p "$__wt_n" 2>/dev/null) || continue
		__wt_f=${__wt_d#declare -}; __wt_f=${__wt_f%% *}
		[[ $__wt_f == *r* ]] && continue
		printf '%s\n' "$__wt_d"
	done
	printf 'cd %q\n' "$PWD"
	} > "$AGENTLOG_WT_STATE.new" && mv "$AGENTLOG_WT_STATE.new" "$AGENTLOG_WT_STATE"
}
__wt_save
`

func (r *Runner) env() []string {
	if r.state == "" {
		r.state = filepath.Join(r.Dir, ".walkthrough-state")
	}
	return append(append([]string(nil), r.Env...), "AGENTLOG_WT_STATE="+r.state)
}

// Run runs one block. A foreground block must exit 0 within its timeout
// and print what it expects; a background block must print its ready text
// before its timeout, and keeps running until Stop.
func (r *Runner) Run(b *Block) (output string, err error) {
	if b.Skip != "" {
		return "", nil
	}
	if b.Background {
		return r.start(b)
	}
	timeout := b.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	cmd := exec.Command("bash", "-c", prelude+b.Text+save)
	cmd.Dir, cmd.Env = r.Dir, r.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s: still running after %v", b.Where(), timeout)
	}
	// Whatever the block left running in the background (a stray "&")
	// goes with it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w", b.Where(), err)
	}
	for _, e := range b.Expect {
		if !strings.Contains(out.String(), e) {
			return out.String(), fmt.Errorf("%s: the output does not contain %q", b.Where(), e)
		}
	}
	return out.String(), nil
}

func (r *Runner) start(b *Block) (string, error) {
	timeout := b.Timeout
	if timeout == 0 {
		timeout = DefaultReadyTimeout
	}
	cmd := exec.Command("bash", "-c", prelude+b.Text)
	cmd.Dir, cmd.Env = r.Dir, r.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &bgProc{b: b, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { cmd.Wait(); close(p.done) }()
	r.bg = append(r.bg, p)
	// Poll the process's output for its ready line: the only sign another
	// process gives that it is ready.
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.out.String(), b.Ready) {
		select {
		case <-p.done:
			return p.out.String(), fmt.Errorf("%s: exited (%v) before printing %q", b.Where(), cmd.ProcessState, b.Ready)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return p.out.String(), fmt.Errorf("%s: did not print %q within %v", b.Where(), b.Ready, timeout)
		}
	}
	return p.out.String(), nil
}

// Background returns the output so far of each background process, for
// failure messages.
func (r *Runner) Background() string {
	var s strings.Builder
	for _, p := range r.bg {
		fmt.Fprintf(&s, "--- background %s:\n%s\n", p.b.Where(), tail(p.out.String(), 4000))
	}
	return s.String()
}

// Stop ends the background processes with SIGTERM (SIGKILL after grace)
// and returns an error if one had already exited.
func (r *Runner) Stop(grace time.Duration) error {
	var errs []error
	for _, p := range r.bg {
		select {
		case <-p.done:
			errs = append(errs, fmt.Errorf("%s: exited early (%v)", p.b.Where(), p.cmd.ProcessState))
			continue
		default:
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			errs = append(errs, fmt.Errorf("%s: did not stop within %v of SIGTERM", p.b.Where(), grace))
		}
	}
	r.bg = nil
	return errors.Join(errs...)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// IsolateNetwork is called first thing in a process running in a new
// network namespace: it brings up the loopback and makes every name
// server of /etc/resolv.conf an address of the loopback that never
// answers, so that a DNS lookup waits for its timeout as with a slow
// resolver. It returns a function that stops the silent servers.
func IsolateNetwork() (stop func(), err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	lo, err := unix.NewIfreq("lo")
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, lo); err != nil {
		return nil, fmt.Errorf("reading the loopback's flags: %w", err)
	}
	lo.SetUint16(lo.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, lo); err != nil {
		return nil, fmt.Errorf("bringing up the loopback: %w", err)
	}
	var conns []io.Closer
	stop = func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for i, ns := range nameServers() {
		ip := net.ParseIP(ns).To4()
		if ip == nil {
			continue
		}
		if !ip.IsLoopback() {
			alias, err := unix.NewIfreq(fmt.Sprintf("lo:%d", i+1))
			if err != nil {
				return stop, err
			}
			if err := alias.SetInet4Addr(ip); err != nil {
				return stop, err
			}
			if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, alias); err != nil {
				return stop, fmt.Errorf("adding %s to the loopback: %w", ip, err)
			}
		}
		pc, err := net.ListenPacket("udp4", net.JoinHostPort(ns, "53"))
		if err != nil {
			return stop, fmt.Errorf("a silent DNS server on %s: %w", ns, err)
		}
		conns = append(conns, pc)
		go func() { // read and drop
			buf := make([]byte, 1500)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
	}
	return stop, nil
}

var nsLine = regexp.MustCompile(`(?m)^\s*nameserver\s+(\S+)`)

func nameServers() []string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range nsLine.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// Forward makes port on this process's loopback reachable at the same
// port on the loopback of the network namespace of process pid, until
// the returned listener is closed.
func Forward(pid, port int) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // not unlocked if restoring fails: the thread then exits
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer self.Close()
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("entering the walkthrough's network namespace: %w", err)}
			return
		}
		ln, lerr := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			if ln != nil {
				ln.Close()
			}
			ch <- result{err: err}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, lerr}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	go func() {
		for {
			c, err := r.ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return r.ln, nil
}
