package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a call, the outcome label of agentlog_gateway_calls_total:
// the outcome recorded in its entry (success, error, tool_error, denied,
// upstream_error), or what the gateway did with a call it did not record.
const (
	resultUnauthenticated = "unauthenticated" // no credential, or the log refused it (401)
	resultFailClosed      = "fail_closed"     // the log could not be written (502, not forwarded or withheld)
	resultUnrecorded      = "unrecorded"      // fail_open: let through without an entry
	resultInvalid         = "invalid"         // a malformed or oversized request (4xx)
	resultOverloaded      = "overloaded"      // at max_concurrent (503)
	resultPassthrough     = "passthrough"     // an MCP GET stream or DELETE, not a call
)

// metrics are the gateway's Prometheus metrics (docs/gateway.md). Names
// are stable.
type metrics struct {
	calls       *prometheus.CounterVec   // by route and outcome
	added       *prometheus.HistogramVec // by route: the call's time minus the upstream's
	upstream    *prometheus.HistogramVec // by route: the upstream's time
	appends     prometheus.Histogram     // one append request to the log, round trip
	batch       prometheus.Histogram     // entries per append request
	appendErrs  *prometheus.CounterVec   // by reason: refused, log_down
	inflight    prometheus.Gauge
	sessionAsks *prometheus.CounterVec // by result: ok, refused, log_down
}

func newMetrics(r prometheus.Registerer) *metrics {
	lat := prometheus.ExponentialBuckets(0.00025, 2, 16) // 250 µs to 8 s
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentlog_gateway_calls_total",
			Help: "Calls by route and outcome: the outcome recorded, or unauthenticated, fail_closed, unrecorded, invalid, overloaded, passthrough.",
		}, []string{"route", "outcome"}),
		added: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agentlog_gateway_added_seconds",
			Help:    "Time the gateway added to a call: from its arrival to its answer, less the time waiting for the upstream.",
			Buckets: lat,
		}, []string{"route"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agentlog_gateway_upstream_seconds",
			Help:    "Time from forwarding a call to the upstream's answer (its headers, or its whole body when it is held).",
			Buckets: lat,
		}, []string{"route"}),
		appends: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentlog_gateway_log_append_seconds",
			Help:    "Round trip of one append request to the log (until its entries are durable).",
			Buckets: lat,
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentlog_gateway_log_append_entries",
			Help:    "Entries per append request to the log (calls sharing one append).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		appendErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentlog_gateway_log_append_errors_total",
			Help: "Append requests to the log that failed, by reason: refused (the log refused the session credential) or log_down.",
		}, []string{"reason"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentlog_gateway_calls_in_flight",
			Help: "Calls being served.",
		}),
		sessionAsks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentlog_gateway_session_checks_total",
			Help: "Session credentials checked with the log (not answered from the cache), by result: ok, refused, log_down.",
		}, []string{"result"}),
	}
	for _, reason := range []string{"refused", "log_down"} {
		m.appendErrs.WithLabelValues(reason)
	}
	if r != nil {
		r.MustRegister(m.calls, m.added, m.upstream, m.appends, m.batch, m.appendErrs, m.inflight, m.sessionAsks)
	}
	return m
}

// stats is what one request tells the metrics; ServeHTTP observes it once
// the request is answered.
type stats struct {
	outcome   string        // the outcome recorded; "" if none was
	upstream  time.Duration // time waiting for the upstream
	agent     string        // the agent whose call slot the request holds (takeAgent)
	bodyBytes int64         // bytes of max_body_bytes_in_flight it holds (readBody)
}

type statsKey struct{}

func statsOf(ctx context.Context) *stats {
	if st, ok := ctx.Value(statsKey{}).(*stats); ok {
		return st
	}
	return &stats{} // a Gateway method called without ServeHTTP (tests)
}

// result is a served request's outcome label: the outcome recorded, or
// what its status says the gateway did.
func (st *stats) result(w http.ResponseWriter, code int) string {
	switch {
	case w.Header().Get(UnrecordedHeader) != "":
		return resultUnrecorded
	case st.outcome != "":
		return st.outcome
	case code == http.StatusUnauthorized:
		return resultUnauthenticated
	case code == http.StatusBadGateway:
		return resultFailClosed
	case code == http.StatusServiceUnavailable:
		return resultOverloaded
	case code == http.StatusForbidden:
		return OutcomeDenied
	case code >= 400 && code < 500:
		return resultInvalid
	}
	return resultPassthrough
}
