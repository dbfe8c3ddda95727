package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
)

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	logKey := fs.String("log-key", "", "file holding the log's verifier key (log.pub)")
	timeKey := fs.String("time-key", "", "file holding the log's timestamp verifier key (time.pub); if given the checkpoint's time signature is required")
	policyFile := fs.String("policy", "", "c2sp.org/tlog-policy file: also require the checkpoint to be cosigned by the witness quorum it defines")
	index := fs.Int64("index", -1, "also verify the inclusion of the entry at this index")
	tokenFile := fs.String("token-file", "", "auditor or admin token file, to fetch the entry for --index")
	wait := fs.Duration("wait", 10*time.Second, "with --index, wait this long for a checkpoint that covers the entry (the log signs one every --checkpoint-interval; 0: do not wait)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *logKey == "" {
		return cmdline.Usagef("--log-key is required")
	}
	lk, err := os.ReadFile(*logKey)
	if err != nil {
		return fmt.Errorf("reading the log key: %w", err)
	}
	var tk []byte
	if *timeKey != "" {
		if tk, err = os.ReadFile(*timeKey); err != nil {
			return fmt.Errorf("reading the time key: %w", err)
		}
	}
	v, err := client.NewVerifier(string(lk), string(tk))
	if err != nil {
		return err
	}
	var opts []client.Option
	if *tokenFile != "" {
		tok, err := cmdline.ReadSecret(*tokenFile)
		if err != nil {
			return err
		}
		opts = append(opts, client.WithToken(tok))
	}
	c, err := client.New(*server, opts...)
	if err != nil {
		return cmdline.Usagef("%s", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *index >= 0 && *tokenFile == "" {
		return cmdline.Usagef("--index needs --token-file (an auditor or admin token) to fetch the entry")
	}
	cp, err := awaitCheckpoint(ctx, c, v, *index+1, *wait)
	if err != nil {
		return err
	}
	cosigners, err := verifyPolicy(*policyFile, string(lk), cp.Raw)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checkpoint OK: origin %s, size %d, root %x", cp.Origin, cp.Size, cp.Root)
	if !cp.Time.IsZero() {
		fmt.Fprintf(stdout, ", signed at %s", cp.Time.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(stdout)
	if cosigners != "" {
		fmt.Fprintf(stdout, "witness quorum OK: cosigned by %s\n", cosigners)
	}
	if *index < 0 {
		return nil
	}
	leaf, err := c.Entry(ctx, uint64(*index))
	if err != nil {
		return err
	}
	if err := c.VerifyInclusion(ctx, cp, uint64(*index), leaf); err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, leaf, "  ", "  "); err != nil {
		pretty.Reset()
		pretty.Write(leaf)
	}
	fmt.Fprintf(stdout, "entry %d is included in the checkpoint of size %d:\n  %s\n", *index, cp.Size, pretty.String())
	return nil
}

// awaitCheckpoint returns the log's verified checkpoint, waiting up to wait
// for one of at least size leaves: an entry appended a moment ago is covered
// by the next checkpoint the log signs, not by the one it serves now. After
// wait it returns the checkpoint it has, which the caller then finds too
// small.
func awaitCheckpoint(ctx context.Context, c *client.Client, v *client.Verifier, size int64, wait time.Duration) (*checkpoint.Signed, error) {
	deadline := time.Now().Add(wait)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		cp, err := c.VerifiedCheckpoint(ctx, v)
		if err != nil || int64(cp.Size) >= size || !time.Now().Before(deadline) {
			return cp, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a checkpoint of size %d: %w", size, ctx.Err())
		case <-poll.C:
		}
	}
}
