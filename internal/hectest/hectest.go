// Package hectest is an HTTP Event Collector for tests, written to
// Splunk's documented HEC contract: POST /services/collector/event with
// "Authorization: Splunk TOKEN", a body of concatenated event objects,
// and, with indexer acknowledgement on, a request channel
// (X-Splunk-Request-Channel) and an ackId per request that POST
// /services/collector/ack reports indexed, and busy answers on demand.
// The unit and crash tests use it; log/sink/interop tests the sink
// against the OpenTelemetry Collector's splunkhecreceiver.
package hectest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// Event is one HEC event object as received; unknown fields are refused.
type Event struct {
	Time       json.Number     `json:"time"`
	Host       string          `json:"host"`
	Source     string          `json:"source"`
	SourceType string          `json:"sourcetype"`
	Index      string          `json:"index"`
	Event      json.RawMessage `json:"event"`
}

// Server is the collector's handler.
type Server struct {
	token string
	ack   bool
	// BusyEvery makes every n-th event request (the 1st, n+1-th, ...)
	// answer 503 "Server is busy" (code 9), keeping nothing; 0 never.
	BusyEvery int

	mu     sync.Mutex
	events []Event
	acks   map[uint64]int // ackId -> times queried
	nextID uint64
	posts  int
}

// New returns a collector that accepts token, with indexer
// acknowledgement if ack; it answers busy to every 4th request.
func New(token string, ack bool) *Server {
	return &Server{token: token, ack: ack, BusyEvery: 4, acks: map[uint64]int{}}
}

// Events returns the events kept so far, in order.
func (h *Server) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// Acks returns how many ackIds were given and how many were reported
// indexed.
func (h *Server) Acks() (given, indexed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.acks {
		if n >= 2 {
			indexed++
		}
	}
	return int(h.nextID), indexed
}

func (h *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	answer := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("Authorization") != "Splunk "+h.token {
		answer(http.StatusForbidden, map[string]any{"text": "Invalid token", "code": 4})
		return
	}
	if h.ack && r.Header.Get("X-Splunk-Request-Channel") == "" {
		answer(http.StatusBadRequest, map[string]any{"text": "Data channel is missing", "code": 10})
		return
	}
	switch r.URL.Path {
	case "/services/collector/event":
		h.posts++
		if h.BusyEvery > 0 && h.posts%h.BusyEvery == 1 {
			answer(http.StatusServiceUnavailable, map[string]any{"text": "Server is busy", "code": 9})
			return
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
		dec.DisallowUnknownFields()
		var got []Event
		for dec.More() {
			var e Event
			if err := dec.Decode(&e); err != nil || len(e.Event) == 0 {
				answer(http.StatusBadRequest, map[string]any{"text": "Invalid data format", "code": 6})
				return
			}
			got = append(got, e)
		}
		h.events = append(h.events, got...)
		if !h.ack {
			answer(http.StatusOK, map[string]any{"text": "Success", "code": 0})
			return
		}
		id := h.nextID
		h.nextID++
		h.acks[id] = 0
		answer(http.StatusOK, map[string]any{"text": "Success", "code": 0, "ackId": id})
	case "/services/collector/ack":
		var q struct {
			Acks []uint64 `json:"acks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
			answer(http.StatusBadRequest, map[string]any{"text": "Invalid data format", "code": 6})
			return
		}
		out := map[string]bool{}
		for _, id := range q.Acks {
			n, ok := h.acks[id]
			if ok {
				h.acks[id] = n + 1
			}
			// Indexed from the second query on.
			out[fmt.Sprint(id)] = ok && n >= 1
		}
		answer(http.StatusOK, map[string]any{"acks": out})
	default:
		http.NotFound(w, r)
	}
}
