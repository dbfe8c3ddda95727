// Package sink delivers the log's entries, as the OCSF events of package
// ocsf, to the places security teams read them: JSON lines in a file
// (rotated by size) or on standard output, syslog (RFC 5424 over TCP with
// RFC 6587 octet-counting framing, or over TLS as RFC 5425), the Splunk
// HTTP Event Collector (/services/collector/event, with indexer
// acknowledgement), and generic webhooks (NDJSON batches, optionally
// HMAC-signed). docs/siem.md is the manual.
//
// A sink follows the log after entries are committed: appends never wait
// for it. Each sink delivers every entry at least once and in index order.
// It reads a batch from the log, sends it, retries with exponential
// backoff (1 s doubling to a minute) until the destination takes it, and
// only then stores its position (the next index to deliver) in the log's
// database, fsynced; a restart resumes from that position, so what is lost
// to a crash is at most a resent batch (duplicates, never gaps). What a
// sink holds in memory is one batch (BatchEvents events, at most
// [BatchBytes]); the backlog of a sink that is down is the log itself.
//
// With a mirror bucket (package mirror) the sinks of the active log
// deliver only entries the bucket holds ([Options.Limit]) and publish each
// sink's position there ([Options.Publish]) after storing it locally; a
// standby that takes over resumes each sink from the published position
// ([Options.Resume]), so a failover re-delivers at most what the sinks
// delivered in the last [Options.PublishEvery] and skips nothing.
//
// The configuration in force is recorded in the log (kind "system",
// action "sinks.configured") whenever it changes, without secrets.
package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/ocsf"
)

// BatchBytes caps the events of one batch (at least one event is sent,
// however large).
const BatchBytes = 4 << 20

// FailingAfter is how many failed sends in a row make a sink count as
// failing in /healthz.
const FailingAfter = 3

// Event is one OCSF event, encoded, with the index of its entry.
type Event struct {
	Index    uint64
	Time     time.Time // the entry's time (to the millisecond, as in the event)
	Severity int       // the event's severity_id
	JSON     []byte    // ocsf.Marshal of the event, one line without newline
}

// destination sends batches. Send returns nil only once the whole batch
// is taken (written and synced, or acknowledged); it may be called again
// with the same batch after an error.
type destination interface {
	Send(ctx context.Context, batch []Event) error
	Close() error
}

// Options configures a Set.
type Options struct {
	Log    *alog.Log
	Config Config
	// Origin is the log's checkpoint origin (the events' metadata.uid and
	// log_name); Version agentlog's version, for metadata.product.
	Origin, Version string
	// Poll is how often a sink that is caught up checks the log (default
	// 200ms).
	Poll time.Duration
	// RetryBase is the first retry delay (default 1s), doubling up to
	// RetryMax (default a minute).
	RetryBase, RetryMax time.Duration
	// Limit, if set, bounds delivery: only entries below Limit() (and the
	// log's size) are delivered. With a mirror it is the mirrored size, so
	// nothing is delivered that a new active after a failover lacks.
	Limit func() uint64
	// Publish, if set, is called with a sink's position (the next index to
	// deliver) at most every PublishEvery (default 1s) while it moves, and
	// once more when Run ends, always after the position is stored in the
	// log's database. A failure is logged and reported in Status, and the
	// position is published again at the next tick.
	Publish      func(ctx context.Context, sink string, next uint64) error
	PublishEvery time.Duration
	// Resume, if set, returns the position published for a sink (by the
	// node that last held the log's lock); found false means none, and the
	// sink starts as without Resume (its stored position, else per From).
	// A sink starts at the higher of the published and the stored
	// position (every entry below either was delivered), lowered to the
	// log's size. An error stops New.
	Resume func(ctx context.Context, sink string) (next uint64, found bool, err error)
	// Stdout is where a stdout sink writes (default os.Stdout).
	Stdout     io.Writer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Set runs the configured sinks.
type Set struct {
	o     Options
	src   ocsf.Source
	sinks []*runner
}

type runner struct {
	s     Sink
	dst   destination
	start uint64 // position as of New

	next      atomic.Uint64
	delivered atomic.Uint64
	mu        sync.Mutex
	failures  int
	lastErr   string
	lastOK    time.Time
	pubErr    string // the last Publish error, "" once one succeeds
	published uint64 // the position last published (valid with pubOK)
	pubOK     bool
}

// Status is one sink's delivery state, for /healthz.
type Status struct {
	Name          string    `json:"name"`
	Type          string    `json:"type"`
	Next          uint64    `json:"next_index"` // entries below it are delivered
	Lag           uint64    `json:"lag_entries"`
	Delivered     uint64    `json:"delivered_events"` // since the server started
	Failures      int       `json:"consecutive_failures"`
	LastError     string    `json:"last_error,omitempty"`
	LastDelivered time.Time `json:"last_delivered,omitzero"`
	MaxLag        uint64    `json:"max_lag_entries"`
	// Published is the position last published to the mirror bucket, and
	// PublishError why the last attempt failed (Options.Publish).
	Published    *uint64 `json:"published_next_index,omitempty"`
	PublishError string  `json:"publish_error,omitempty"`
}

// Problems lists what is wrong with the sinks, for /healthz.
func Problems(st []Status) []string {
	var out []string
	for _, s := range st {
		if s.Failures >= FailingAfter {
			out = append(out, fmt.Sprintf("sink %s failed %d times in a row: %s", s.Name, s.Failures, s.LastError))
		}
		if s.Lag > s.MaxLag {
			out = append(out, fmt.Sprintf("sink %s is %d entries behind the log", s.Name, s.Lag))
		}
		if s.PublishError != "" {
			out = append(out, fmt.Sprintf("sink %s cannot publish its position to the mirror bucket (a takeover would re-deliver from the last one published): %s", s.Name, s.PublishError))
		}
	}
	return out
}

// New checks the configuration, reads the secret files, opens the
// destinations (a file sink's file; network sinks connect when they first
// send) and reads or sets every sink's position; Run starts them.
func New(o Options) (*Set, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Minute
	}
	if o.PublishEvery <= 0 {
		o.PublishEvery = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	set := &Set{o: o, src: ocsf.Source{Origin: o.Origin, Version: o.Version, URL: o.Config.URL}}
	for _, s := range o.Config.Sinks {
		dst, err := set.open(s)
		if err != nil {
			set.Close()
			return nil, fmt.Errorf("sink %q: %w", s.Name, err)
		}
		r := &runner{s: s, dst: dst}
		set.sinks = append(set.sinks, r)
		if r.start, err = set.position(s); err != nil {
			set.Close()
			return nil, fmt.Errorf("reading the position of sink %q: %w", s.Name, err)
		}
		r.next.Store(r.start)
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(collector{set}); err != nil {
			set.Close()
			return nil, err
		}
	}
	return set, nil
}

func (set *Set) open(s Sink) (destination, error) {
	sec, err := s.secrets()
	if err != nil {
		return nil, err
	}
	tc, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	switch s.Type {
	case TypeFile:
		return openFile(s)
	case TypeStdout:
		return newStdout(set.o.Stdout), nil
	case TypeSyslog:
		return newSyslog(s, tc, set.o.Origin), nil
	case TypeHEC:
		return newHEC(s, tc, sec, set.o.Origin), nil
	case TypeWebhook:
		return newWebhook(s, tc, sec), nil
	}
	return nil, fmt.Errorf("%w: type %q", ErrInvalid, s.Type)
}

// position reads a sink's stored position, or stores its start (per
// From) when it has none; with Resume, the resumed position wins.
func (set *Set) position(s Sink) (uint64, error) {
	if set.o.Resume != nil {
		next, found, err := set.o.Resume(context.Background(), s.Name)
		if err != nil {
			return 0, err
		}
		if found {
			if size := set.o.Log.Size(); next > size {
				set.o.Logger.Warn("sink: the published position is beyond this log's size; resuming at the size", "sink", s.Name, "published", next, "size", size)
				next = size
			}
			stored, err := set.o.Log.Position(posKey(s.Name), next)
			if err != nil {
				return 0, err
			}
			if stored >= next {
				return stored, nil
			}
			if err := set.o.Log.SetPosition(posKey(s.Name), next); err != nil {
				return 0, err
			}
			set.o.Logger.Info("sink: resuming from the position published to the bucket", "sink", s.Name, "next_index", next, "stored_here", stored)
			return next, nil
		}
	}
	var init uint64
	if s.From == "now" {
		init = set.o.Log.Size()
	}
	pos, err := set.o.Log.Position(posKey(s.Name), init)
	if err == nil && pos > set.o.Log.Size() {
		err = fmt.Errorf("stored position %d is beyond the log's size %d", pos, set.o.Log.Size())
	}
	return pos, err
}

// Status returns every sink's state, in configuration order.
func (set *Set) Status() []Status {
	if set == nil {
		return nil
	}
	size := set.o.Log.Size()
	out := make([]Status, 0, len(set.sinks))
	for _, r := range set.sinks {
		st := Status{Name: r.s.Name, Type: r.s.Type, Next: r.next.Load(), Delivered: r.delivered.Load(), MaxLag: r.s.maxLag()}
		if size > st.Next {
			st.Lag = size - st.Next
		}
		r.mu.Lock()
		st.Failures, st.LastError, st.LastDelivered = r.failures, r.lastErr, r.lastOK
		if r.pubOK {
			p := r.published
			st.Published = &p
		}
		st.PublishError = r.pubErr
		r.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Run delivers until ctx ends, then closes the destinations.
func (set *Set) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range set.sinks {
		wg.Go(func() { set.run(ctx, r) })
	}
	if set.o.Publish != nil {
		wg.Go(func() { set.publishLoop(ctx) })
	}
	wg.Wait()
	set.Close()
}

// publishLoop publishes the positions that moved every PublishEvery, and
// once more when ctx ends (after the sinks stopped moving them, within
// 5 s), so a planned switchover re-delivers nothing.
func (set *Set) publishLoop(ctx context.Context) {
	t := time.NewTicker(set.o.PublishEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			set.publish(fctx)
			cancel()
			return
		case <-t.C:
			set.publish(ctx)
		}
	}
}

// publish publishes every sink's position that differs from the last one
// published. next is read after the position was stored locally (run
// stores, then sets next).
func (set *Set) publish(ctx context.Context) {
	for _, r := range set.sinks {
		next := r.next.Load()
		r.mu.Lock()
		same := r.pubOK && r.published == next
		r.mu.Unlock()
		if same {
			continue
		}
		err := set.o.Publish(ctx, r.s.Name, next)
		r.mu.Lock()
		if err != nil {
			if r.pubErr == "" {
				set.o.Logger.Warn("sink: publishing its position to the bucket failed; retrying", "sink", r.s.Name, "next_index", next, "err", err)
			}
			r.pubErr = err.Error()
		} else {
			r.published, r.pubOK, r.pubErr = next, true, ""
		}
		r.mu.Unlock()
	}
}

// limit is the end of what may be delivered now.
func (set *Set) limit() uint64 {
	size := set.o.Log.Size()
	if set.o.Limit != nil {
		size = min(size, set.o.Limit())
	}
	return size
}

// Close closes the destinations (Run does when it returns).
func (set *Set) Close() {
	for _, r := range set.sinks {
		if err := r.dst.Close(); err != nil {
			set.o.Logger.Warn("closing a sink", "sink", r.s.Name, "err", err)
		}
	}
}

func (set *Set) run(ctx context.Context, r *runner) {
	pos := r.start
	backoff := set.o.RetryBase
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		size := set.limit()
		if pos >= size {
			if !wait(set.o.Poll) {
				return
			}
			continue
		}
		batch, err := set.read(ctx, pos, min(size, pos+uint64(r.s.batch())))
		if err == nil {
			err = r.dst.Send(ctx, batch)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.fail(err)
			set.o.Logger.Warn("sink: sending failed; retrying", "sink", r.s.Name, "from", pos, "in", backoff, "err", err)
			if !wait(backoff) {
				return
			}
			backoff = min(2*backoff, set.o.RetryMax)
			continue
		}
		backoff = set.o.RetryBase
		end := batch[len(batch)-1].Index + 1
		// Stored only once the batch is taken: at least once.
		for {
			err := set.o.Log.SetPosition(posKey(r.s.Name), end)
			if err == nil {
				break
			}
			r.fail(fmt.Errorf("storing the position: %w", err))
			set.o.Logger.Error("sink: storing its position; retrying", "sink", r.s.Name, "err", err)
			if !wait(backoff) {
				return
			}
			backoff = min(2*backoff, set.o.RetryMax)
		}
		pos = end
		r.next.Store(pos)
		r.delivered.Add(uint64(len(batch)))
		r.mu.Lock()
		r.failures, r.lastErr, r.lastOK = 0, "", time.Now()
		r.mu.Unlock()
	}
}

func (r *runner) fail(err error) {
	r.mu.Lock()
	r.failures++
	r.lastErr = err.Error()
	r.mu.Unlock()
}

// read maps the entries [from, to) to events, stopping early at
// BatchBytes (never before the first).
func (set *Set) read(ctx context.Context, from, to uint64) ([]Event, error) {
	var batch []Event
	n := 0
	stop := errors.New("full")
	err := set.o.Log.ForEachEntry(ctx, from, to, func(i uint64, leaf []byte) error {
		if len(batch) > 0 && n+len(leaf) > BatchBytes {
			return stop
		}
		ev, err := set.event(i, leaf)
		if err != nil {
			return err
		}
		batch = append(batch, ev)
		n += len(ev.JSON)
		if n >= BatchBytes {
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return nil, fmt.Errorf("reading entries from %d: %w", from, err)
	}
	return batch, nil
}

// event maps one entry: the one mapping of package ocsf, without proof
// (the event names the URLs to fetch it from when Config.URL is set).
func (set *Set) event(i uint64, leaf []byte) (Event, error) {
	e, err := ocsf.Event(set.src, i, leaf, nil)
	if err != nil {
		return Event{}, fmt.Errorf("entry %d: %w", i, err)
	}
	b, err := ocsf.Marshal(e)
	if err != nil {
		return Event{}, fmt.Errorf("entry %d: %w", i, err)
	}
	return Event{Index: i, Time: time.UnixMilli(e.Time).UTC(), Severity: e.Severity, JSON: b}, nil
}

// collector exports the sinks' state as metrics, read when scraped.
type collector struct{ set *Set }

var (
	descNext      = prometheus.NewDesc("agentlog_sink_next_index", "Next entry index the sink delivers (entries below it are delivered).", []string{"sink", "type"}, nil)
	descLag       = prometheus.NewDesc("agentlog_sink_lag_entries", "Entries committed to the log and not yet delivered by the sink.", []string{"sink", "type"}, nil)
	descDelivered = prometheus.NewDesc("agentlog_sink_delivered_events_total", "Events the sink delivered since the server started.", []string{"sink", "type"}, nil)
	descFailures  = prometheus.NewDesc("agentlog_sink_consecutive_failures", "Failed sends in a row (0 when the last send succeeded).", []string{"sink", "type"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descNext
	ch <- descLag
	ch <- descDelivered
	ch <- descFailures
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.set.Status() {
		ch <- prometheus.MustNewConstMetric(descNext, prometheus.GaugeValue, float64(st.Next), st.Name, st.Type)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(st.Lag), st.Name, st.Type)
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(st.Delivered), st.Name, st.Type)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(st.Failures), st.Name, st.Type)
	}
}
