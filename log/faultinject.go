//go:build faultinject

package log

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// Fault injection into the storage layer, compiled only with the
// faultinject build tag (the fault suite's binary; never the default
// one). With AGENTLOG_FAULTINJECT=FILE in its environment, every commit of
// the sequencer reads FILE and does what its first line says:
//
//	(empty, or no file)  commit normally
//	fsync-error          write the batch, then fail as fsync does (EIO)
//	write-error          fail before writing (EIO)
//	no-space             fail before writing (ENOSPC)
//	slow-sync DURATION   wait DURATION, then commit
//	hold                 wait until the file says something else, then
//	                     act on that (a commit that does not return: a
//	                     stalled disk)
//
// so a test can change the fault while the server runs. With
// AGENTLOG_FAULTINJECT_SMALL_TABLES=1, the database has small memtables
// and tables (256 KiB and 64 KiB), so that it flushes and compacts within
// seconds of load (the FUSE fault cases, internal/fusefault).
func init() {
	if os.Getenv("AGENTLOG_FAULTINJECT_SMALL_TABLES") == "1" {
		smallTables = true
		fmt.Fprintln(os.Stderr, "agentlog: small database tables for fault injection (build tag faultinject)")
	}
	file := os.Getenv("AGENTLOG_FAULTINJECT")
	if file == "" {
		return
	}
	fmt.Fprintf(os.Stderr, "agentlog: storage fault injection is on (build tag faultinject), controlled by %s\n", file)
	storageFault = func(commit func() error) error {
		var line, verb, arg string
		for {
			b, err := os.ReadFile(file)
			if err != nil {
				return commit()
			}
			line, _, _ = strings.Cut(string(b), "\n")
			verb, arg, _ = strings.Cut(strings.TrimSpace(line), " ")
			if verb != "hold" {
				break
			}
			time.Sleep(10 * time.Millisecond) // the injected stall: look again
		}
		switch verb {
		case "fsync-error":
			if err := commit(); err != nil {
				return err
			}
			return fmt.Errorf("fsync (injected): %w", syscall.EIO)
		case "write-error":
			return fmt.Errorf("write (injected): %w", syscall.EIO)
		case "no-space":
			return fmt.Errorf("write (injected): %w", syscall.ENOSPC)
		case "slow-sync":
			d, err := time.ParseDuration(arg)
			if err != nil {
				return fmt.Errorf("fault injection: %q: %w", line, err)
			}
			time.Sleep(d)
		}
		return commit()
	}
}
