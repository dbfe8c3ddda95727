package log

import "github.com/prometheus/client_golang/prometheus"

// metrics are the log core's Prometheus metrics. Names are stable.
type metrics struct {
	appendSeconds prometheus.Histogram
	commitSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	queueDepth    prometheus.Gauge
	treeSize      prometheus.Gauge
	pushbacks     prometheus.Counter
	withdrawn     *prometheus.CounterVec
	commitErrors  prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentlog_append_seconds",
			Help:    "Time from an append call to its entries being durable.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentlog_commit_seconds",
			Help:    "Time to sequence and fsync one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentlog_batch_entries",
			Help:    "Entries committed per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15),
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentlog_queue_entries",
			Help: "Entries waiting to be sequenced.",
		}),
		treeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentlog_tree_size",
			Help: "Committed tree size (number of entries).",
		}),
		pushbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentlog_append_pushback_total",
			Help: "Append requests refused because the queue was full.",
		}),
		withdrawn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentlog_append_withdrawn_total",
			Help: "Appends withdrawn from the queue before their commit started, with nothing written: reason budget (they waited longer than --commit-wait: the storage is stalled, answered 503) or client_gone (the caller stopped waiting first: a client that disconnected, or the log's own writer of denied attempts after 5 s).",
		}, []string{"reason"}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentlog_commit_errors_total",
			Help: "Batches that failed to commit.",
		}),
	}
	// Both series exist from the start, so a rate() over them is defined
	// before the first withdrawal.
	m.withdrawn.WithLabelValues(withdrawnBudget)
	m.withdrawn.WithLabelValues(withdrawnClientGone)
	if r != nil {
		r.MustRegister(m.appendSeconds, m.commitSeconds, m.batchSize, m.queueDepth, m.treeSize, m.pushbacks, m.withdrawn, m.commitErrors)
	}
	return m
}

func (m *metrics) registerDisk(r prometheus.Registerer, g *diskGuard) {
	if r == nil {
		return
	}
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentlog_disk_free_bytes",
		Help: "Free bytes in the database's file system at the last check.",
	}, func() float64 { return float64(g.free.Load()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentlog_disk_need_bytes",
		Help: "Free bytes appends need (the reserve plus what the database's open files may still grow by); below it appends get 507.",
	}, func() float64 { return float64(g.need.Load()) }))
}
