package ocsf_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/log/ocsf"
	"github.com/agentlog/agentlog/log/ocsf/ocsftest"
)

const (
	origin   = "example.com/agentlog"
	logSKey  = "PRIVATE+KEY+example.com/agentlog+caec1adf+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
	timeSKey = "PRIVATE+KEY+example.com/agentlog/time+0ee49295+BAICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC"
)

var t0 = time.Date(2026, 11, 28, 3, 4, 5, 6, time.UTC)

// leaves are entries of every kind, as the log writes them (the
// principals, actions and attributes of log/identity, log/api,
// log/anomaly and log/change).
func leaves() []*agentlog.Leaf {
	sig := bytes.Repeat([]byte{7}, 64)
	ls := []*agentlog.Leaf{
		{Kind: "token", Principal: "admin", Role: "admin", Action: "token.created", Attributes: json.RawMessage(`{"id":"tok-1","name":"auditor","role":"auditor"}`)},
		{Kind: "agent", Principal: "admin", Role: "admin", Agent: "billing-bot", Action: "agent.registered", Attributes: json.RawMessage(`{"owner":"alice","description":"refunds"}`)},
		{Kind: "agent", Principal: "alice", Role: "approver", TokenID: "tok-7", Agent: "billing-bot", Action: "agent.approved"},
		{Kind: "agent", Principal: "admin", Role: "admin", Agent: "billing-bot", Action: "agent.scope_changed", Attributes: json.RawMessage(`{"previous":null,"scope":{"tools":["stripe"]}}`)},
		{Kind: "session", Principal: "billing-bot", Role: "agent", Agent: "billing-bot", Session: "657f01", Task: "refund-7731", Config: "sha256:6f00", Action: "session.opened",
			Attributes: json.RawMessage(`{"config_status":"approved","expires":"2026-11-28T04:04:05Z","ttl_seconds":3600}`)},
		{Kind: "action", Principal: "billing-bot", Role: "agent", Agent: "billing-bot", Session: "657f01", Task: "refund-7731", Config: "sha256:6f00", Seq: 1,
			Action: "payment.refund", Tool: "stripe", Resource: "ch_1", Outcome: "success",
			Attributes: json.RawMessage(`{"amount":1200,"model":{"provider":"anthropic","name":"claude-sonnet","version":"4.5"}}`), Sig: sig},
		{Kind: "action", Principal: "billing-bot", Role: "agent", Agent: "billing-bot", Session: "657f01", Task: "refund-7731", Seq: 2,
			Action: "db.query", Tool: "sql", Resource: "customers/42", Outcome: "error", Attributes: json.RawMessage(`{"gen_ai.request.model":"gpt-5","gen_ai.provider.name":"openai"}`), Sig: sig},
		{Kind: "action", Principal: "billing-bot", Role: "agent", Agent: "billing-bot", Session: "657f01", Seq: 3, Action: "note", Outcome: "pending"},
		{Kind: "alert", Principal: "agentlog", Role: "system", Agent: "billing-bot", Session: "657f01", Task: "refund-7731", Action: "alert.scope", Tool: "stripe", Resource: "ch_1",
			Attributes: json.RawMessage(`{"detail":"outside the agent's declared scope","entry":5,"rule":"scope"}`)},
		{Kind: "alert", Principal: "agentlog", Role: "system", Action: "alert.ntp_unsynced.cleared", Attributes: json.RawMessage(`{"rule":"ntp_unsynced"}`)},
		{Kind: "denied", Principal: "billing-bot", Role: "agent", Agent: "billing-bot", Session: "657f01", Action: "append", Outcome: "denied",
			Attributes: json.RawMessage(`{"method":"POST","path":"/v1/entries","reason":"session expired","remote":"127.0.0.1","status":401}`)},
		{Kind: "denied", Action: "query", Outcome: "denied", Attributes: json.RawMessage(`{"method":"GET","path":"/v1/query","reason":"role not allowed","remote":"::1","status":403}`)},
		{Kind: "change", Principal: "admin", Role: "admin", Agent: "billing-bot", Config: "sha256:6f00", Action: "change.proposed",
			Attributes: json.RawMessage(`{"change":"chg-8c1d","description":"model update to 4.6","previous":"sha256:1a00","risk":"medium"}`)},
		{Kind: "change", Principal: "alice", Role: "approver", Agent: "billing-bot", Config: "sha256:6f00", Action: "change.approved",
			Attributes: json.RawMessage(`{"change":"chg-8c1d","comment":"eval report reviewed","proposed_by":"admin"}`)},
		{Kind: "change", Principal: "bob", Role: "approver", Agent: "billing-bot", Config: "sha256:7000", Action: "change.rejected", Attributes: json.RawMessage(`{"change":"chg-9"}`)},
		{Kind: "system", Principal: "agentlog", Role: "system", Action: "anomaly.configured", Attributes: json.RawMessage(`{"rules":{"scope":{}}}`)},
		{Kind: "session", Principal: "billing-bot", Role: "agent", Agent: "billing-bot", Session: "657f01", Task: "refund-7731", Action: "session.closed"},
		{Kind: "token", Principal: "admin", Role: "admin", Action: "token.revoked", Attributes: json.RawMessage(`{"id":"tok-1","name":"auditor","role":"auditor"}`)},
		{Kind: "agent", Principal: "admin", Role: "admin", Agent: "billing-bot", Action: "agent.revoked", Attributes: json.RawMessage(`{"sessions_ended":1}`)},
		{Kind: "future-kind", Action: "x"},
	}
	for i, l := range ls {
		l.Time = t0.Add(time.Duration(i) * time.Second)
	}
	return ls
}

func encode(ls []*agentlog.Leaf) [][]byte {
	var out [][]byte
	for _, l := range ls {
		out = append(out, l.Append(nil))
	}
	return out
}

func schemas(t testing.TB) *ocsftest.Validator {
	t.Helper()
	v, err := ocsftest.New()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// validate checks an event against its class's schema.
func validate(t testing.TB, v *ocsftest.Validator, e *ocsf.OCSFEvent) map[string]any {
	t.Helper()
	b, err := ocsf.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsRune(b, '\n') {
		t.Fatalf("event is not one line: %s", b)
	}
	if err := v.Validate(b); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSchemaVersion(t *testing.T) {
	b, err := os.ReadFile("testdata/schema/objects.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("ocsf-schema "+ocsf.Version+" ")) {
		t.Fatalf("testdata/schema was not generated at OCSF %s", ocsf.Version)
	}
}

// TestEveryKindValidates maps entries of every kind, with and without a
// proof, validates each event against the schema of its class, and
// checks the fields that carry the entry.
func TestEveryKindValidates(t *testing.T) {
	ss := schemas(t)
	ls := leaves()
	raw := encode(ls)
	tr := testonly.New(rfc6962.DefaultHasher)
	tr.AppendData(raw...)
	keys, err := checkpoint.NewKeys(origin, logSKey, timeSKey, func() time.Time { return t0.Add(time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.Sign(keys, tr.Size(), tr.Hash())
	if err != nil {
		t.Fatal(err)
	}
	src := ocsf.Source{Origin: origin, Version: "v1.2.3", URL: "https://log.example.com/"}
	want := map[string]int{"action": 6003, "denied": 6003, "agent": 3001, "token": 3001, "session": 3002, "change": 3004, "system": 3004, "alert": 2004, "future-kind": 0}
	seen := map[int]bool{}
	for i, leaf := range raw {
		idx := uint64(i)
		path, err := tr.InclusionProof(idx, tr.Size())
		if err != nil {
			t.Fatal(err)
		}
		for _, pf := range []*ocsf.Proof{nil, {Checkpoint: cp, TreeSize: tr.Size(), Path: path}} {
			e, err := ocsf.Event(src, idx, leaf, pf)
			if err != nil {
				t.Fatal(err)
			}
			if e.ClassUID != want[ls[i].Kind] {
				t.Errorf("%s %s: class %d, want %d", ls[i].Kind, ls[i].Action, e.ClassUID, want[ls[i].Kind])
			}
			seen[e.ClassUID] = true
			m := validate(t, ss, e)
			checkCommon(t, m, ls[i], idx, leaf, pf, keys)
		}
	}
	if len(seen) != 6 {
		t.Errorf("classes seen: %v", seen)
	}
}

// checkCommon checks what every event carries: time, metadata, the exact
// leaf, and an attestation that verifies.
func checkCommon(t *testing.T, m map[string]any, l *agentlog.Leaf, idx uint64, leaf []byte, pf *ocsf.Proof, keys *checkpoint.Keys) {
	t.Helper()
	if int64(m["time"].(float64)) != l.Time.UnixMilli() {
		t.Errorf("time %v, want %d", m["time"], l.Time.UnixMilli())
	}
	md := m["metadata"].(map[string]any)
	if md["version"] != "1.8.0" || md["uid"] != origin+"/"+itoa(idx) || md["log_name"] != origin || md["product"].(map[string]any)["version"] != "v1.2.3" {
		t.Errorf("metadata %v", md)
	}
	if m["raw_data"] != string(leaf) {
		t.Errorf("raw_data %v is not the leaf %s", m["raw_data"], leaf)
	}
	att := m["attestation_list"].([]any)[0].(map[string]any)
	fp := att["fingerprint"].(map[string]any)["value"].(string)
	if fp != hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(leaf)) {
		t.Errorf("fingerprint %s is not the leaf hash", fp)
	}
	un := m["unmapped"].(map[string]any)["agentlog"].(map[string]any)
	if un["kind"] != l.Kind || un["entry_url"] != "https://log.example.com/v1/entries/"+itoa(idx) {
		t.Errorf("unmapped %v", un)
	}
	sigs, _ := att["signatures"].([]any)
	if pf == nil {
		if _, ok := un["checkpoint"]; ok || len(sigs) != boolInt(len(l.Sig) > 0) {
			t.Errorf("without a proof: unmapped %v, signatures %v", un, sigs)
		}
		return
	}
	// The event alone proves the entry: the checkpoint verifies with the
	// log's keys, and the inclusion proof of raw_data under it.
	c, err := checkpoint.Open([]byte(un["checkpoint"].(string)), keys.LogVerifier, keys.TimeVerifier)
	if err != nil {
		t.Fatal(err)
	}
	var path [][]byte
	for _, p := range un["inclusion_proof"].([]any) {
		b, _ := base64.StdEncoding.DecodeString(p.(string))
		path = append(path, b)
	}
	if pf.TreeSize > 1 && len(path) == 0 {
		t.Fatal("no inclusion proof")
	}
	lh, _ := hex.DecodeString(fp)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, c.Size, lh, path, c.Root); err != nil {
		t.Errorf("inclusion proof in the event does not verify: %v", err)
	}
	if un["proof_url"] != "https://log.example.com/v1/proof/inclusion?index="+itoa(idx)+"&size="+itoa(pf.TreeSize) {
		t.Errorf("proof_url %v", un["proof_url"])
	}
	// The log's signature and its timestamp cosignature, with the root.
	if len(sigs) != 2+boolInt(len(l.Sig) > 0) {
		t.Fatalf("signatures %v", sigs)
	}
	last := sigs[len(sigs)-1].(map[string]any)
	if !strings.HasPrefix(last["developer_uid"].(string), origin+"/time+") || int64(last["created_time"].(float64)) != t0.Add(time.Hour).Unix()*1000 ||
		last["digest"].(map[string]any)["value"] != hex.EncodeToString(c.Root) {
		t.Errorf("cosignature %v", last)
	}
}

func TestActionFields(t *testing.T) {
	ls := leaves()
	raw := encode(ls)
	e, err := ocsf.Event(ocsf.Source{Origin: origin}, 5, raw[5], nil)
	if err != nil {
		t.Fatal(err)
	}
	m := validate(t, schemas(t), e)
	get := func(path string) any {
		var v any = m
		for _, k := range strings.Split(path, ".") {
			switch x := v.(type) {
			case map[string]any:
				v = x[k]
			case []any:
				v = x[0].(map[string]any)[k]
			default:
				return nil
			}
		}
		return v
	}
	for path, want := range map[string]any{
		"class_uid": 6003.0, "type_uid": 600399.0, "activity_name": "payment.refund", "status_id": 1.0,
		"actor.user.uid": "billing-bot", "actor.user.type_id": 4.0, "actor.session.uid": "657f01",
		"api.operation": "payment.refund", "api.service.name": "stripe", "resources.uid": "ch_1", "src_endpoint.name": "billing-bot",
		"ai_model.name": "claude-sonnet", "ai_model.ai_provider": "anthropic", "ai_model.version": "4.5",
		"metadata.correlation_uid": "refund-7731", "metadata.sequence": 5.0,
		"unmapped.agentlog.task": "refund-7731", "unmapped.agentlog.config": "sha256:6f00", "unmapped.agentlog.seq": 1.0,
		"unmapped.agentlog.sig": base64.StdEncoding.EncodeToString(ls[5].Sig), "unmapped.agentlog.attributes.amount": 1200.0,
		"attestation_list.signatures.developer_uid": "billing-bot",
	} {
		if got := get(path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	// The OpenTelemetry GenAI keys name the model too; a failed action.
	e, _ = ocsf.Event(ocsf.Source{Origin: origin}, 6, raw[6], nil)
	if e.StatusID != 2 || e.AIModel == nil || e.AIModel.Name != "gpt-5" || e.AIModel.Provider != "openai" {
		t.Errorf("gen_ai model: %+v status %d", e.AIModel, e.StatusID)
	}
	// Without a model, no ai_model; an unknown outcome is Other.
	e, _ = ocsf.Event(ocsf.Source{Origin: origin}, 7, raw[7], nil)
	if e.AIModel != nil || e.StatusID != 99 || e.Status != "pending" {
		t.Errorf("no model: %+v status %d %q", e.AIModel, e.StatusID, e.Status)
	}
}

func TestLifecycleActivities(t *testing.T) {
	ls := leaves()
	raw := encode(ls)
	want := []struct{ class, activity int }{
		{3001, 1}, {3001, 1}, {3001, 2}, {3001, 99}, {3002, 1}, {6003, 99}, {6003, 99}, {6003, 99},
		{2004, 1}, {2004, 3}, {6003, 99}, {6003, 99}, {3004, 1}, {3004, 10}, {3004, 11}, {3004, 3}, {3002, 2}, {3001, 5}, {3001, 5}, {0, 99},
	}
	for i, leaf := range raw {
		e, err := ocsf.Event(ocsf.Source{Origin: origin}, uint64(i), leaf, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.ClassUID != want[i].class || e.ActivityID != want[i].activity || e.TypeUID != want[i].class*100+want[i].activity {
			t.Errorf("%s: class %d activity %d type %d, want %v", ls[i].Action, e.ClassUID, e.ActivityID, e.TypeUID, want[i])
		}
	}
	// A denied request: a failed API call from the caller's address.
	e, _ := ocsf.Event(ocsf.Source{Origin: origin}, 10, raw[10], nil)
	if e.StatusID != 2 || e.StatusDetail != "session expired" || e.StatusCode != "401" || e.Src.IP != "127.0.0.1" || e.Severity != 3 {
		t.Errorf("denied: %+v", e)
	}
	// An alert points at the action that raised it.
	e, _ = ocsf.Event(ocsf.Source{Origin: origin}, 8, raw[8], nil)
	if e.Finding.Title != "scope" || e.Finding.Related[0].UID != origin+"/5" || e.Finding.Desc == "" {
		t.Errorf("alert: %+v", e.Finding)
	}
	// An operator token's entry: the actor's uid is the token's id, its
	// name the token's name.
	e, _ = ocsf.Event(ocsf.Source{Origin: origin}, 2, raw[2], nil)
	if u := e.Actor.User; u.UID != "tok-7" || u.Name != "alice" || u.TypeID != 1 {
		t.Errorf("operator actor: %+v", u)
	}
	// The bootstrap admin has no token id: its name is its uid.
	e, _ = ocsf.Event(ocsf.Source{Origin: origin}, 1, raw[1], nil)
	if u := e.Actor.User; u.UID != "admin" || u.Name != "admin" {
		t.Errorf("bootstrap admin actor: %+v", u)
	}
	// A change names its id, agent and configuration.
	e, _ = ocsf.Event(ocsf.Source{Origin: origin}, 13, raw[13], nil)
	if e.Entity.UID != "chg-8c1d" || e.Entity.Name != "billing-bot" || e.Entity.Version != "sha256:6f00" || e.Comment != "eval report reviewed" {
		t.Errorf("change: %+v", e.Entity)
	}
}

func TestBadLeaf(t *testing.T) {
	for _, b := range []string{``, `{}`, `[1]`, `{"time":"2026-01-01T00:00:00Z"}`} {
		if _, err := ocsf.Event(ocsf.Source{Origin: origin}, 0, []byte(b), nil); err == nil {
			t.Errorf("%q: no error", b)
		}
	}
}

// FuzzEvent maps arbitrary leaves: every leaf that parses gives an event
// that validates against its class's schema.
func FuzzEvent(f *testing.F) {
	for _, l := range encode(leaves()) {
		f.Add(l, []byte("example.com/agentlog\n1\nAAAA\n\n— example.com/agentlog AAAAAAAA\n"))
	}
	ss := schemas(f)
	f.Fuzz(func(t *testing.T, leaf, cp []byte) {
		e, err := ocsf.Event(ocsf.Source{Origin: origin}, 3, leaf, &ocsf.Proof{Checkpoint: cp, TreeSize: 4})
		if err != nil {
			return
		}
		validate(t, ss, e)
	})
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSchemaIsStrict checks the generated schemas reject what OCSF does:
// a missing required attribute, an unknown one, an activity outside the
// class's enum, and an ai_model without its provider.
func TestSchemaIsStrict(t *testing.T) {
	ss := schemas(t)
	raw := encode(leaves())
	e, err := ocsf.Event(ocsf.Source{Origin: origin}, 5, raw[5], nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ocsf.Marshal(e)
	for name, edit := range map[string]func(m map[string]any){
		"no actor":          func(m map[string]any) { delete(m, "actor") },
		"no src_endpoint":   func(m map[string]any) { delete(m, "src_endpoint") },
		"unknown attribute": func(m map[string]any) { m["agent"] = "x" },
		"activity 5":        func(m map[string]any) { m["activity_id"] = 5 },
		"class 6002":        func(m map[string]any) { m["class_uid"] = 6002 },
		"no ai_provider":    func(m map[string]any) { delete(m["ai_model"].(map[string]any), "ai_provider") },
		"time as text":      func(m map[string]any) { m["time"] = "2026-11-28T03:04:05Z" },
		"empty fingerprint": func(m map[string]any) {
			delete(m["attestation_list"].([]any)[0].(map[string]any), "fingerprint")
			delete(m["attestation_list"].([]any)[0].(map[string]any), "signatures")
		},
	} {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		bb, _ := json.Marshal(m)
		if err := ss.ValidateClass(6003, bb); err == nil {
			t.Errorf("%s: the schema accepts it", name)
		}
	}
}
