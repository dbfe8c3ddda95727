package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
)

// Values of serve's --unwitnessed flag: what /checkpoint serves while the
// newest checkpoint lacks its witness quorum.
const (
	unwitnessedHold    = "hold"    // keep serving the newest cosigned checkpoint (503 before the first)
	unwitnessedPublish = "publish" // serve the log-signed checkpoint at once, cosigned once the quorum is met
)

// newWitnessClient reads the --witness-policy file and returns the client
// that pushes each checkpoint to its witnesses and calls publish with what
// /checkpoint must serve. The policy's log lines, if any, must include this
// log's key.
func newWitnessClient(path, unwitnessed string, lag time.Duration, keys *checkpoint.Keys, prover witness.Prover,
	reg prometheus.Registerer, logger *slog.Logger, publish func(*checkpoint.Signed)) (*witness.Client, error) {
	if unwitnessed != unwitnessedHold && unwitnessed != unwitnessedPublish {
		return nil, cmdline.Usagef("--unwitnessed %q: want %s or %s", unwitnessed, unwitnessedHold, unwitnessedPublish)
	}
	p, err := readPolicy(path, keys.LogVKey)
	if err != nil {
		return nil, err
	}
	c, err := witness.NewClient(witness.ClientConfig{
		Policy:             p,
		Prover:             prover,
		Publish:            publish,
		PublishUnwitnessed: unwitnessed == unwitnessedPublish,
		LagTolerance:       lag,
		Registerer:         reg,
		Logger:             logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	names := make([]string, 0, len(p.Witnesses))
	for _, w := range p.Witnesses {
		names = append(names, w.Name)
	}
	logger.Info("witnessing checkpoints", "policy", path, "witnesses", names, "unwitnessed", unwitnessed)
	return c, nil
}

// publishCheckpoint hands a newly signed checkpoint to the witness client,
// which publishes it as --unwitnessed says, or straight to the server when
// there is no witness policy.
func publishCheckpoint(srv *api.Server, wc *witness.Client, c *checkpoint.Signed) {
	if wc != nil {
		wc.Submit(c)
		return
	}
	srv.Publish(c)
}

// verifyPolicy checks a signed checkpoint against the --policy file of
// verify, if one is given, and returns the names of the witnesses whose
// cosignatures count.
func verifyPolicy(path, logVKey string, raw []byte) (string, error) {
	if path == "" {
		return "", nil
	}
	p, err := readPolicy(path, logVKey)
	if err != nil {
		return "", err
	}
	v, err := p.Verify(raw)
	if err != nil {
		return "", fmt.Errorf("the checkpoint does not satisfy %s: %w", path, err)
	}
	names := make([]string, len(v.Cosigners))
	for i, w := range v.Cosigners {
		names[i] = w.Name
	}
	if len(names) == 0 {
		return "(none needed)", nil
	}
	return strings.Join(names, ", "), nil
}

// readPolicy is the one reader of policy files (c2sp.org/tlog-policy) for
// every verb: it parses the file (parsePolicyFile) and applies
// policy.RequireLog for the log whose verifier key is logVKey ("" when the
// verb was given none).
func readPolicy(path, logVKey string) (*policy.Policy, error) {
	p, err := parsePolicyFile(path)
	if err != nil {
		return nil, err
	}
	if err := p.RequireLog(logVKey); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// checkPolicyFile checks serve's --witness-policy before anything is
// written to the data directory: that it parses, and that it can list the
// log of dir (its key, or none for a first start, which creates a key no
// policy can name yet).
func checkPolicyFile(path, dir string) error {
	pub, err := os.ReadFile(filepath.Join(dir, checkpoint.LogPubFile))
	if err == nil {
		_, err = readPolicy(path, string(pub))
		return err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading the log key: %w", err)
	}
	p, err := parsePolicyFile(path)
	if err != nil {
		return err
	}
	if len(p.Logs) > 0 {
		return fmt.Errorf("%s lists logs, but this first start creates a new log key, which it cannot list: start without --witness-policy, then add the key in %s to the policy", path, filepath.Join(dir, checkpoint.LogPubFile))
	}
	return nil
}

// parsePolicyFile reads and parses a c2sp.org/tlog-policy file.
func parsePolicyFile(path string) (*policy.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the policy: %w", err)
	}
	p, err := policy.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// readLogKey reads a log's verifier key file (log.pub); "" for no file.
func readLogKey(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the log key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
