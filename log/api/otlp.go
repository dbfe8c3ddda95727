package api

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"

	coltracepb "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/otlp"
)

// Caps of an OTLP/HTTP export: its body as sent and once decompressed.
const (
	maxOTLPBytes        = 4 << 20
	maxOTLPDecompressed = 16 << 20
)

// postOTLPTraces is OTLP/HTTP trace ingest (opentelemetry.io/docs/specs/otlp):
// an agent's session credential, an ExportTraceServiceRequest in protobuf
// or JSON, optionally gzip-compressed. The GenAI and MCP spans become
// entries of the agent (package otlp), and the other spans too with
// Config.OTLPRecordOther; the answer is an
// ExportTraceServiceResponse in the request's encoding, with a partial
// success for rejected or ignored spans. A bad request writes nothing.
func (s *Server) postOTLPTraces(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "otlp.traces", RoleAgent)
	if err != nil {
		return err
	}
	if p.Session == "" {
		err := fmt.Errorf("%w: OTLP ingest takes an agent session credential", ErrForbidden)
		s.recordDenied(r, "otlp.traces", p, err)
		return err
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != otlp.Protobuf && mt != otlp.JSON {
		return fmt.Errorf("%w: Content-Type must be %s or %s, not %q", errMediaType, otlp.Protobuf, otlp.JSON, r.Header.Get("Content-Type"))
	}
	// The export's bytes as decompressed are the agent's append bytes in
	// flight: taken from the byte budget as they are read, so a few small
	// gzip bodies cannot each make the server hold 16 MiB beyond it.
	resv, err := s.budget.take(p.Agent, 0)
	if err != nil {
		return err
	}
	defer resv.release()
	sent := http.MaxBytesReader(w, r.Body, maxOTLPBytes)
	var body io.Reader = sent
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return fmt.Errorf("%w: the body is not gzip: %s", errBadRequest, err)
		}
		body = zr
	default:
		return fmt.Errorf("%w: Content-Encoding %q: send gzip or none", errMediaType, enc)
	}
	b, err := io.ReadAll(io.LimitReader(&reader{r: body, res: resv}, maxOTLPDecompressed+1))
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w (after %d bytes)", errBodyTimeout, len(b))
	case errors.Is(err, errOverBudget):
		// Read the rest through (into no buffer), so the client sees the
		// 503 rather than a reset connection.
		io.Copy(io.Discard, sent)
		return err
	case err != nil:
		return fmt.Errorf("%w: reading the body: %s", errBadRequest, err)
	case len(b) > maxOTLPDecompressed:
		return &http.MaxBytesError{Limit: maxOTLPDecompressed}
	}
	req, err := otlp.Decode(b, mt)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	recs, res := otlp.Map(req, otlp.Options{RecordOther: s.cfg.OTLPRecordOther})
	if len(recs) > alog.MaxEntriesPerRequest {
		return fmt.Errorf("%w: %d spans to record in one export, at most %d", errBadRequest, len(recs), alog.MaxEntriesPerRequest)
	}
	if len(recs) > 0 {
		if _, err := s.cfg.Log.AppendWith(r.Context(), p, alog.KindAction, recs, nil); err != nil {
			return err
		}
	}
	out := &coltracepb.ExportTraceServiceResponse{}
	if msg := res.Message(); msg != "" {
		out.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: int64(res.Rejected), ErrorMessage: msg}
	}
	var ob []byte
	if mt == otlp.JSON {
		ob, err = protojson.Marshal(out)
	} else {
		ob, err = proto.Marshal(out)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", mt)
	_, err = w.Write(ob)
	return err
}
