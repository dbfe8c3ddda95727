package anomaly

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// under the webhook's secret.
const SignatureHeader = "X-Agentlog-Signature"

// IndexHeader carries the alert's index in the log.
const IndexHeader = "X-Agentlog-Index"

// Sign returns the SignatureHeader value of body under secret, for
// receivers to compare with hmac.Equal.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deliver POSTs every alert from the hook's stored position on, in index
// order, retrying each until the endpoint answers 2xx, and stores the
// position after each delivery: at least once, never skipped. A POST in
// flight when ctx ends is not cut off: it runs to its answer (or the
// client's timeout) and a delivered alert's position is stored, since an
// endpoint that took the alert would otherwise get it again after a
// restart.
func (w *Watcher) deliver(ctx context.Context, n int, h hook) {
	key := hookKey(h.url)
	pos := h.pos
	alerts := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}}}
	backoff := w.o.retryBase
	for {
		type pending struct {
			index uint64
			body  []byte
		}
		var batch []pending
		st, err := w.o.Log.Search(ctx, alerts, pos, w.limit(), 64, func(i uint64, leaf []byte) error {
			body := fmt.Appendf(nil, `{"index":%d,"entry":%s}`, i, leaf)
			batch = append(batch, pending{i, body})
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.o.Logger.Error("webhook: finding alerts", "url", h.url, "err", err)
		}
		for _, p := range batch {
			if ctx.Err() != nil {
				return
			}
			for {
				err := w.post(context.WithoutCancel(ctx), h, p.index, p.body)
				if err == nil {
					w.m.deliveries.WithLabelValues("ok").Inc()
					w.hookStatus(n, p.index+1, nil)
					backoff = w.o.retryBase
					break
				}
				w.m.deliveries.WithLabelValues("error").Inc()
				w.hookStatus(n, p.index, err)
				w.o.Logger.Warn("webhook delivery failed; retrying", "url", h.url, "alert", p.index, "in", backoff, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, time.Minute)
			}
			pos = p.index + 1
			if err := w.setPosition(key, pos); err != nil {
				w.o.Logger.Error("webhook: storing its position", "url", h.url, "err", err)
			} else {
				w.hookPos[n].Store(pos)
			}
		}
		if err == nil && len(batch) == 0 && st.Next > pos {
			// Nothing to deliver up to here: remember that.
			pos = st.Next
			if err := w.setPosition(key, pos); err != nil {
				w.o.Logger.Error("webhook: storing its position", "url", h.url, "err", err)
			} else {
				w.hookPos[n].Store(pos)
			}
		}
		if len(batch) == 64 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.o.Poll):
		}
	}
}

func (w *Watcher) post(ctx context.Context, h hook, index uint64, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(IndexHeader, strconv.FormatUint(index, 10))
	if h.secret != nil {
		req.Header.Set(SignatureHeader, Sign(h.secret, body))
	}
	resp, err := w.o.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", h.url, resp.Status)
	}
	return nil
}
