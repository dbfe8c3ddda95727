// Package clock is the NTP-anchored clock that dates the log's entries and
// checkpoints and a witness's cosignatures: the local monotonic clock plus
// an offset measured against several NTP servers (RFC 5905, through
// github.com/beevik/ntp), combined robustly and never stepping backwards.
// See [Clock] for the rules.
package clock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/ntp"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultServers are public NTP services run by different operators, so
// that one bad source is outvoted: the servers a daemon uses when it is
// given none.
var DefaultServers = []string{"time.cloudflare.com", "time.google.com", "pool.ntp.org", "time.apple.com"}

// Defaults of [Config].
const (
	DefaultSyncInterval     = 64 * time.Second
	DefaultNTPTimeout       = 2 * time.Second
	DefaultOutlierThreshold = time.Second
)

// Config configures a [Clock].
type Config struct {
	Servers      []string      // NTP servers, "host" or "host:port" (port 123 by default; IPv6 as "[addr]:port")
	SyncInterval time.Duration // time between syncs in Run; default 64s
	Timeout      time.Duration // per query; default 2s
	// OutlierThreshold is how far an answer's offset may lie from the median
	// of all answers before it is discarded; default 1s.
	OutlierThreshold time.Duration
	// MaxAge is how long after the last successful sync the clock still
	// counts as synced; default 4 × SyncInterval.
	MaxAge time.Duration
	Logger *slog.Logger // nil discards
	// SystemTime reads the local clock, with a monotonic reading; nil
	// means time.Now. Tests pass a fake.
	SystemTime func() time.Time
}

// A Clock tells NTP-anchored time: the local monotonic clock plus an offset
// measured against several NTP servers.
//
// # Combining servers
//
// [Clock.Sync] queries every server at once and keeps the answers that pass
// the NTP sanity checks (github.com/beevik/ntp's Response.Validate). It takes
// the median of their offsets (the lower middle one for an even count),
// discards answers farther than OutlierThreshold from it, and requires the
// remaining ones to be a strict majority of the answers; their median (mean
// of the two middle ones for an even count) becomes the offset. So one
// falseticker among three servers is ignored, and two servers that disagree
// make the sync fail rather than pick one at random.
//
// # Time never goes backwards
//
// Now never returns a time before one it returned earlier, across re-syncs
// and from concurrent callers. A sync that moves the clock forward takes
// effect at once. A sync that moves it backwards takes effect on the
// underlying timeline at once, but Now holds at the last time it returned
// until that timeline catches up: time stands still for the size of the
// correction instead of stepping back. (Call Sync before the first Now to
// avoid holding for the initial correction of an unsynchronized host.)
//
// Between syncs time advances with the local monotonic clock, so a step of
// the system's wall clock does not move Now.
type Clock struct {
	cfg       Config
	log       *slog.Logger
	sys       func() time.Time // system time with a monotonic reading; a test hook
	afterSync func(error)      // called by Run after each Sync; a test hook

	anchor atomic.Pointer[anchor]
	last   atomic.Int64 // largest UnixNano returned by Now

	syncMu sync.Mutex // serializes Sync

	mu       sync.Mutex // guards the fields below
	synced   bool       // a sync has succeeded
	lastOK   time.Time  // sys time of the last successful sync
	lastTry  bool       // the last sync attempt succeeded
	tried    bool
	lastErr  string
	answered int
	used     int
}

// anchor ties the local clock to true time: at local time sys it was true.
type anchor struct {
	sys  time.Time
	true time.Time
}

// New returns a clock reading the system time (offset zero, not synced)
// until the first successful [Clock.Sync].
func New(cfg Config) *Clock {
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultNTPTimeout
	}
	if cfg.OutlierThreshold <= 0 {
		cfg.OutlierThreshold = DefaultOutlierThreshold
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 4 * cfg.SyncInterval
	}
	cfg.Servers = slices.Clone(cfg.Servers)
	c := &Clock{cfg: cfg, log: cfg.Logger, sys: time.Now}
	if cfg.SystemTime != nil {
		c.sys = cfg.SystemTime
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	now := c.sys()
	c.anchor.Store(&anchor{sys: now, true: now.Round(0)})
	return c
}

// Now returns the current NTP-anchored time in UTC. It never returns a time
// before one it returned earlier. It is safe for concurrent use and does not
// block on Sync.
func (c *Clock) Now() time.Time {
	a := c.anchor.Load()
	n := a.true.Add(c.sys().Sub(a.sys)).UnixNano()
	for {
		prev := c.last.Load()
		if n <= prev {
			return time.Unix(0, prev).UTC()
		}
		if c.last.CompareAndSwap(prev, n) {
			return time.Unix(0, n).UTC()
		}
	}
}

// offset returns the correction currently applied to the system clock.
func (c *Clock) offset() time.Duration {
	a := c.anchor.Load()
	return a.true.Sub(a.sys.Round(0))
}

// Status describes a Clock for health checks and metrics.
type Status struct {
	Synced    bool          `json:"synced"`     // a sync succeeded within MaxAge
	Degraded  bool          `json:"degraded"`   // never synced, or the last sync attempt failed
	Offset    time.Duration `json:"offset_ns"`  // correction applied to the system clock
	LastSync  time.Time     `json:"last_sync"`  // clock time of the last successful sync; zero if none
	LastError string        `json:"last_error"` // error of the last failed attempt; empty after a success
	Servers   int           `json:"servers"`    // configured servers
	Answered  int           `json:"answered"`   // servers that gave a valid answer in the last attempt
	Used      int           `json:"used"`       // answers kept after discarding outliers in the last attempt
}

// Status returns the clock's current state.
func (c *Clock) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Synced:    c.synced && c.sys().Sub(c.lastOK) <= c.cfg.MaxAge,
		Degraded:  !c.synced || (c.tried && !c.lastTry),
		Offset:    c.offset(),
		LastError: c.lastErr,
		Servers:   len(c.cfg.Servers),
		Answered:  c.answered,
		Used:      c.used,
	}
	if c.synced {
		a := c.anchor.Load()
		st.LastSync = a.true.Add(c.lastOK.Sub(a.sys)).UTC()
	}
	return st
}

type answer struct {
	server string
	offset time.Duration
	err    error
}

// Sync queries all servers in parallel and, if enough of them agree (see
// [Clock]), updates the offset. It returns an error if no server gave a
// valid answer or the answers disagree; the clock then keeps its previous
// offset and reports itself degraded. If ctx ends first, Sync returns its
// error and changes nothing.
func (c *Clock) Sync(ctx context.Context) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()

	answers := make(chan answer, len(c.cfg.Servers))
	for _, s := range c.cfg.Servers {
		go func() { answers <- c.query(s) }()
	}
	var offsets []time.Duration
	var errs []error
collect:
	for range c.cfg.Servers {
		select {
		case a := <-answers:
			if a.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", a.server, a.err))
				continue
			}
			offsets = append(offsets, a.offset)
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
			break collect
		}
	}
	if err := ctx.Err(); err != nil {
		return err // shutting down: keep the state of the last complete attempt
	}
	offset, used, err := combine(offsets, c.cfg.OutlierThreshold)
	if len(c.cfg.Servers) == 0 {
		err = errors.New("no NTP servers are configured")
	} else if len(offsets) == 0 {
		err = fmt.Errorf("no NTP server answered: %w", errors.Join(errs...))
	}

	now := c.sys()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tried, c.answered, c.used = true, len(offsets), used
	if err != nil {
		c.lastTry, c.lastErr = false, err.Error()
		return err
	}
	c.lastTry, c.lastErr, c.synced, c.lastOK = true, "", true, now
	prev := c.offset()
	c.anchor.Store(&anchor{sys: now, true: now.Round(0).Add(offset)})
	c.log.Debug("NTP sync", "offset", offset, "change", offset-prev, "answered", len(offsets), "used", used)
	if offset < prev-c.cfg.OutlierThreshold {
		c.log.Warn("NTP moved the clock backwards; holding time until it catches up",
			"change", offset-prev, "offset", offset)
	}
	return nil
}

// query asks one server for its offset from the local clock.
func (c *Clock) query(server string) answer {
	addr, err := hostPort(server)
	if err != nil {
		return answer{server: server, err: err}
	}
	r, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{Timeout: c.cfg.Timeout})
	if err == nil {
		err = r.Validate()
	}
	if err != nil {
		return answer{server: server, err: err}
	}
	return answer{server: server, offset: r.ClockOffset}
}

// hostPort adds the default NTP port 123 to a server address without one.
func hostPort(server string) (string, error) {
	if _, _, err := net.SplitHostPort(server); err == nil {
		return server, nil
	}
	switch host := server; {
	case host == "":
		return "", errors.New("empty NTP server address")
	case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
		return net.JoinHostPort(host[1:len(host)-1], "123"), nil
	case strings.Count(host, ":") >= 2 && !strings.ContainsAny(host, "[]"): // bare IPv6 address
		return net.JoinHostPort(host, "123"), nil
	case !strings.ContainsAny(host, ":[]"):
		return net.JoinHostPort(host, "123"), nil
	}
	return "", fmt.Errorf("cannot parse NTP server address %q; use host, host:port or [ipv6]:port", server)
}

// combine returns the robust combination of offsets described on [Clock] and
// how many answers it kept.
func combine(offsets []time.Duration, threshold time.Duration) (time.Duration, int, error) {
	if len(offsets) == 0 {
		return 0, 0, nil
	}
	s := slices.Clone(offsets)
	slices.Sort(s)
	m := s[(len(s)-1)/2]
	kept := s[:0:0]
	for _, o := range s {
		if d := o - m; d <= threshold && d >= -threshold {
			kept = append(kept, o)
		}
	}
	if 2*len(kept) <= len(s) {
		return 0, len(kept), fmt.Errorf("the NTP servers disagree: only %d of %d offsets %v lie within %v of the median", len(kept), len(s), s, threshold)
	}
	n := len(kept)
	if n%2 == 1 {
		return kept[n/2], n, nil
	}
	return kept[n/2-1] + (kept[n/2]-kept[n/2-1])/2, n, nil
}

// Run syncs now and then every SyncInterval until ctx is done, logging
// failures.
func (c *Clock) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.SyncInterval)
	defer t.Stop()
	for {
		err := c.Sync(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("NTP sync failed; the clock keeps its last offset", "err", err)
		}
		if c.afterSync != nil {
			c.afterSync(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Register registers the clock's gauges with reg, named prefix +
// "_ntp_synced" (1 when synchronized with NTP, 0 otherwise) and prefix +
// "_ntp_offset_seconds" (the offset applied to the local clock).
func (c *Clock) Register(reg prometheus.Registerer, prefix string) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: prefix + "_ntp_offset_seconds",
		Help: "Offset applied to the local clock, from NTP.",
	}, func() float64 { return c.Status().Offset.Seconds() }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: prefix + "_ntp_synced",
		Help: "1 when the clock is synchronized with NTP, 0 when degraded.",
	}, func() float64 {
		if st := c.Status(); st.Synced && !st.Degraded {
			return 1
		}
		return 0
	}))
}
