package sink

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentlog/agentlog/log/anomaly"
)

// Headers of a webhook delivery.
const (
	// FirstIndexHeader is the index of the batch's first event; the
	// events are consecutive entries.
	FirstIndexHeader = "X-Agentlog-First-Index"
	// CountHeader is the number of events (lines) in the body.
	CountHeader = "X-Agentlog-Count"
	// SinkHeader names the sink.
	SinkHeader = "X-Agentlog-Sink"
)

// maxAnswer caps what is read of a destination's answer.
const maxAnswer = 64 << 10

// httpClient is a sink's client: 30 s per request, the sink's TLS
// settings.
func httpClient(tc *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// post sends body and returns the answer's body if the status is 2xx.
func post(ctx context.Context, c *http.Client, url string, body []byte, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = header
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode/100 != 2 {
		return answer, fmt.Errorf("%s answered %s: %.200s", redact(url), resp.Status, strings.TrimSpace(string(answer)))
	}
	return answer, err
}

// redact drops a URL's query, which may carry a credential.
func redact(url string) string {
	u, _, _ := strings.Cut(url, "?")
	return u
}

// webhookSink POSTs each batch as NDJSON (application/x-ndjson): one
// event a line, each ending with a newline. The receiver answers 2xx once
// it has kept the batch; any other answer, or none, is retried.
type webhookSink struct {
	name   string
	url    string
	token  []byte
	key    []byte
	client *http.Client
}

func newWebhook(s Sink, tc *tls.Config, sec secrets) *webhookSink {
	return &webhookSink{name: s.Name, url: s.URL, token: sec.token, key: sec.key, client: httpClient(tc)}
}

func (w *webhookSink) Send(ctx context.Context, batch []Event) error {
	var body bytes.Buffer
	for _, e := range batch {
		body.Write(e.JSON)
		body.WriteByte('\n')
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-ndjson")
	h.Set(SinkHeader, w.name)
	h.Set(FirstIndexHeader, strconv.FormatUint(batch[0].Index, 10))
	h.Set(CountHeader, strconv.Itoa(len(batch)))
	if w.token != nil {
		h.Set("Authorization", "Bearer "+string(w.token))
	}
	if w.key != nil {
		h.Set(anomaly.SignatureHeader, anomaly.Sign(w.key, body.Bytes()))
	}
	_, err := post(ctx, w.client, w.url, body.Bytes(), h)
	return err
}

func (w *webhookSink) Close() error {
	w.client.CloseIdleConnections()
	return nil
}

// hecSink sends batches to a Splunk HTTP Event Collector: one POST to
// /services/collector/event whose body is the batch's HEC event objects,
// concatenated, each
//
//	{"time": SECONDS.MILLIS, "host": ORIGIN, "source": SOURCE, "sourcetype": "ocsf", "index": INDEX, "event": EVENT}
//
// with Authorization "Splunk TOKEN" and a request channel
// (X-Splunk-Request-Channel, a random UUID per sink and process). With
// ack, the collector's answer must carry an ackId, and the batch counts as
// delivered only once /services/collector/ack reports it indexed.
type hecSink struct {
	base       string
	token      []byte
	channel    string
	ack        bool
	index      string
	source     string
	sourcetype string
	host       string
	client     *http.Client
	ackPoll    time.Duration // first poll of the ack endpoint; doubles to 5s
	ackTimeout time.Duration // beyond it the batch is sent again
}

func newHEC(s Sink, tc *tls.Config, sec secrets, origin string) *hecSink {
	h := &hecSink{base: strings.TrimSuffix(s.URL, "/"), token: sec.token, channel: uuid(), ack: s.Ack, index: s.Index,
		source: s.Source, sourcetype: s.SourceType, host: origin, client: httpClient(tc), ackPoll: 100 * time.Millisecond, ackTimeout: 2 * time.Minute}
	if h.source == "" {
		h.source = origin
	}
	if h.sourcetype == "" {
		h.sourcetype = "ocsf"
	}
	return h
}

// uuid is a random (version 4) UUID.
func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// hecAnswer is the collector's JSON answer.
type hecAnswer struct {
	Text  string  `json:"text"`
	Code  int     `json:"code"`
	AckID *uint64 `json:"ackId"`
}

func (h *hecSink) header() http.Header {
	hd := http.Header{}
	hd.Set("Content-Type", "application/json")
	hd.Set("Authorization", "Splunk "+string(h.token))
	hd.Set("X-Splunk-Request-Channel", h.channel)
	return hd
}

func (h *hecSink) Send(ctx context.Context, batch []Event) error {
	type hecEvent struct {
		Time       json.Number     `json:"time"`
		Host       string          `json:"host,omitempty"`
		Source     string          `json:"source,omitempty"`
		SourceType string          `json:"sourcetype,omitempty"`
		Index      string          `json:"index,omitempty"`
		Event      json.RawMessage `json:"event"`
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	for _, e := range batch {
		ms := e.Time.UnixMilli()
		t := json.Number(fmt.Sprintf("%d.%03d", ms/1000, ms%1000))
		if err := enc.Encode(hecEvent{Time: t, Host: h.host, Source: h.source, SourceType: h.sourcetype, Index: h.index, Event: e.JSON}); err != nil {
			return err
		}
	}
	url := h.base + "/services/collector/event"
	answer, err := post(ctx, h.client, url, body.Bytes(), h.header())
	if err != nil {
		return err
	}
	var a hecAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return fmt.Errorf("%s answered %.200q: not HEC's JSON: %w", url, answer, err)
	}
	if a.Code != 0 {
		return fmt.Errorf("%s answered code %d: %s", url, a.Code, a.Text)
	}
	if !h.ack {
		return nil
	}
	if a.AckID == nil {
		return fmt.Errorf("%s answered without an ackId: turn on indexer acknowledgement for the token, or remove \"ack\"", url)
	}
	return h.waitAck(ctx, *a.AckID)
}

// waitAck polls /services/collector/ack until the collector reports id
// indexed, or ackTimeout passes.
func (h *hecSink) waitAck(ctx context.Context, id uint64) error {
	url := h.base + "/services/collector/ack"
	body := fmt.Appendf(nil, `{"acks":[%d]}`, id)
	deadline := time.Now().Add(h.ackTimeout)
	wait := h.ackPoll
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		answer, err := post(ctx, h.client, url, body, h.header())
		if err != nil {
			return fmt.Errorf("asking for acknowledgement %d: %w", id, err)
		}
		var a struct {
			Acks map[string]bool `json:"acks"`
		}
		if err := json.Unmarshal(answer, &a); err != nil {
			return fmt.Errorf("%s answered %.200q: %w", url, answer, err)
		}
		if a.Acks[strconv.FormatUint(id, 10)] {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("acknowledgement %d not indexed after %s: the batch is sent again", id, h.ackTimeout)
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (h *hecSink) Close() error {
	h.client.CloseIdleConnections()
	return nil
}
