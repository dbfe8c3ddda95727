// Package ocsf maps agentlog entries to events of the Open Cybersecurity
// Schema Framework (OCSF, https://schema.ocsf.io), version [Version], so
// SIEMs that read OCSF ingest them with the agent's stable identity,
// session and task, and with what is needed to check each event against
// the log.
//
// Every leaf kind has a class (docs/siem.md has the mapping field by
// field): actions and denied requests are API Activity (6003), agent and
// token lifecycle events Account Change (3001), sessions Authentication
// (3002), configuration changes and the log's own settings Entity
// Management (3004), alerts Detection Finding (2004), and a kind this
// version does not know Base Event (0). Each event carries, in the shape
// of the proposed record_integrity profile (ocsf-schema #1661), an
// attestation whose fingerprint is the entry's RFC 6962 leaf hash and,
// once a checkpoint covers the entry, the checkpoint's signers; the
// checkpoint, the inclusion proof and the exact leaf are in unmapped and
// raw_data, so the event is checkable offline.
package ocsf

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog"
)

// Version is the OCSF schema version the events conform to.
const Version = "1.8.0"

// Profiles are the OCSF profiles the events use: ai_operation (1.8.0)
// and the proposed record_integrity.
var Profiles = []string{"ai_operation", "record_integrity"}

// Classes, by class_uid.
const (
	ClassBase             = 0
	ClassDetectionFinding = 2004
	ClassAccountChange    = 3001
	ClassAuthentication   = 3002
	ClassEntityManagement = 3004
	ClassAPIActivity      = 6003
)

// Source names the log the entries come from.
type Source struct {
	// Origin is the log's checkpoint origin: metadata.log_name, and with
	// the index metadata.uid.
	Origin string
	// Version is agentlog's version (metadata.product.version); optional.
	Version string
	// URL is the log's base URL, for the proof and checkpoint URLs in
	// unmapped; optional.
	URL string
}

// Proof is what proves an entry under a checkpoint: the signed
// checkpoint and the RFC 6962 inclusion proof of the entry in it.
type Proof struct {
	Checkpoint []byte // a C2SP signed note
	TreeSize   uint64 // the checkpoint's size
	Path       [][]byte
}

// Event maps the leaf at index to an OCSF event. proof may be nil (no
// checkpoint covers the entry yet, or none was asked for).
func Event(src Source, index uint64, leaf []byte, proof *Proof) (*OCSFEvent, error) {
	l, err := agentlog.ParseLeaf(leaf)
	if err != nil {
		return nil, err
	}
	var attrs map[string]any
	if len(l.Attributes) > 0 {
		// Not fatal: a leaf's attributes are an object, but an event is
		// still wanted for one that is not.
		_ = json.Unmarshal(l.Attributes, &attrs)
	}
	e := &OCSFEvent{
		Time:     l.Time.UnixMilli(),
		Severity: 1,
		Metadata: metadata{
			Version:  Version,
			Product:  product{Name: "agentlog", VendorName: "agentlog", Version: src.Version},
			UID:      src.Origin + "/" + strconv.FormatUint(index, 10),
			LogName:  src.Origin,
			Sequence: index,
			Profiles: Profiles,
		},
		RawData: string(leaf),
	}
	e.Metadata.CorrelationUID = l.Task
	if e.Metadata.CorrelationUID == "" {
		e.Metadata.CorrelationUID = l.Session
	}
	un := &unmapped{Leaf: l, Index: index, LeafHash: hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(leaf))}
	e.Attestations = []attestation{attestationOf(src, index, l, leaf, proof, un)}
	e.Unmapped = map[string]any{"agentlog": un}
	e.StatusID, e.Status = status(l.Outcome)
	actor := &actor{User: principal(l.Principal, l.Role, l.TokenID)}
	if l.Session != "" {
		actor.Session = &session{UID: l.Session}
	}

	switch l.Kind {
	case agentlog.KindAction, agentlog.KindDenied:
		e.setClass(ClassAPIActivity, 99, l.Action)
		e.Actor = actor
		e.API = &api{Operation: l.Action}
		if l.Tool != "" {
			e.API.Service = &service{Name: l.Tool}
		}
		if l.Resource != "" {
			e.Resources = []resource{{UID: l.Resource, Name: l.Resource}}
		}
		// The source of the call is the agent; its address where known.
		e.Src = &endpoint{Name: firstOf(l.Agent, l.Principal)}
		if ip, _ := attrs["remote"].(string); ip != "" {
			e.Src.IP = ip
		}
		if e.Src.Name == "" && e.Src.IP == "" {
			e.Src.Name = "unknown"
		}
		e.AIModel = model(attrs)
		if l.Kind == agentlog.KindDenied {
			e.Severity = 3
			e.StatusID, e.Status = 2, "Failure"
			e.StatusDetail, _ = attrs["reason"].(string)
			if m, _ := attrs["method"].(string); m != "" {
				e.HTTPRequest = &httpRequest{Method: m}
				if p, _ := attrs["path"].(string); p != "" {
					e.HTTPRequest.URL = &urlObj{Path: p}
				}
			}
			if s, ok := attrs["status"].(float64); ok {
				e.StatusCode = strconv.Itoa(int(s))
			}
		}
		e.Message = fmt.Sprintf("%s %s by %s", l.Kind, l.Action, firstOf(l.Agent, l.Principal))
	case agentlog.KindAgent, agentlog.KindToken:
		act := map[string]int{"agent.registered": 1, "agent.approved": 2, "agent.revoked": 5,
			"token.created": 1, "token.revoked": 5}[l.Action]
		if act == 0 {
			act = 99
		}
		e.setClass(ClassAccountChange, act, l.Action)
		e.Actor = actor
		if l.Kind == agentlog.KindAgent {
			e.User = &user{UID: l.Agent, Name: l.Agent, TypeID: 4, Type: "Service"}
			if sc, ok := attrs["scope"]; ok && l.Action == "agent.scope_changed" {
				b, _ := json.Marshal(sc)
				e.Policy = &policy{Name: "scope", Data: b}
			}
		} else {
			id, _ := attrs["id"].(string)
			name, _ := attrs["name"].(string)
			role, _ := attrs["role"].(string)
			e.User = principal(firstOf(name, id), role, "")
			e.User.UID = firstOf(id, name)
		}
		if e.User.UID == "" {
			e.User.UID = "unknown"
		}
		e.Message = fmt.Sprintf("%s %s by %s", l.Action, e.User.UID, l.Principal)
	case agentlog.KindSession:
		act := map[string]int{"session.opened": 1, "session.closed": 2}[l.Action]
		if act == 0 {
			act = 99
		}
		e.setClass(ClassAuthentication, act, l.Action)
		e.User = &user{UID: l.Agent, Name: l.Agent, TypeID: 4, Type: "Service"}
		e.Actor = actor
		if l.Session != "" {
			e.Session = &session{UID: l.Session}
			if exp, _ := attrs["expires"].(string); exp != "" {
				if t, err := time.Parse(time.RFC3339Nano, exp); err == nil {
					e.Session.ExpirationTime = t.UnixMilli()
				}
			}
		}
		e.Service = &service{Name: "agentlog"}
		if e.StatusID == 0 {
			e.StatusID, e.Status = 1, "Success"
		}
		e.Message = fmt.Sprintf("%s %s for %s", l.Action, l.Session, l.Agent)
	case agentlog.KindChange, agentlog.KindSystem:
		act := map[string]int{"change.proposed": 1, "change.approved": 10, "change.rejected": 11}[l.Action]
		if act == 0 {
			act = 3 // a system entry updates the log's settings
		}
		e.setClass(ClassEntityManagement, act, l.Action)
		e.Actor = actor
		ent := &entity{TypeID: 99, Data: l.Attributes}
		if l.Kind == agentlog.KindChange {
			ent.Type = "Agent Configuration Change"
			ent.UID, _ = attrs["change"].(string)
			ent.Name = l.Agent
			ent.Version = l.Config
			e.Comment, _ = attrs["comment"].(string)
		} else {
			ent.Type = "agentlog Settings"
			ent.Name = strings.TrimSuffix(l.Action, ".configured")
		}
		if ent.UID == "" && ent.Name == "" {
			ent.Name = firstOf(l.Action, l.Kind)
		}
		e.Entity = ent
		e.Message = fmt.Sprintf("%s by %s", l.Action, l.Principal)
	case agentlog.KindAlert:
		rule, _ := attrs["rule"].(string)
		rule = firstOf(rule, strings.TrimSuffix(strings.TrimPrefix(l.Action, "alert."), ".cleared"))
		act, sev := 1, 3
		if strings.HasSuffix(l.Action, ".cleared") {
			act, sev = 3, 1
		}
		e.setClass(ClassDetectionFinding, act, l.Action)
		e.Severity = sev
		detail, _ := attrs["detail"].(string)
		fi := &findingInfo{UID: e.Metadata.UID, Title: firstOf(rule, l.Action), Desc: detail, Types: []string{rule}}
		if n, ok := attrs["entry"].(float64); ok && n >= 0 {
			fi.Related = []relatedEvent{{UID: src.Origin + "/" + strconv.FormatUint(uint64(n), 10)}}
		}
		e.Finding = fi
		alert := true
		e.IsAlert = &alert
		if l.Resource != "" {
			e.Resources = []resource{{UID: l.Resource, Name: l.Resource}}
		}
		e.Message = firstOf(detail, l.Action)
	default:
		e.setClass(ClassBase, 99, l.Action)
		e.Message = l.Kind + " " + l.Action
	}
	return e, nil
}

func (e *OCSFEvent) setClass(class, activity int, name string) {
	e.ClassUID, e.CategoryUID = class, class/1000
	e.ActivityID, e.TypeUID = activity, class*100+activity
	e.ActivityName = name
	e.ClassName = classNames[class]
}

var classNames = map[int]string{ClassBase: "Base Event", ClassDetectionFinding: "Detection Finding", ClassAccountChange: "Account Change",
	ClassAuthentication: "Authentication", ClassEntityManagement: "Entity Management", ClassAPIActivity: "API Activity"}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// status maps a leaf outcome to status_id and status.
func status(outcome string) (int, string) {
	switch strings.ToLower(outcome) {
	case "":
		return 0, ""
	case "success", "ok", "succeeded", "allowed":
		return 1, "Success"
	case "failure", "failed", "error", "denied", "refused":
		return 2, "Failure"
	}
	return 99, outcome
}

// principal is a user object for who appended an entry; the role picks
// the type: agents are services, the log itself the system.
func principal(id, role, tokenID string) *user {
	u := &user{UID: id, Name: id}
	if tokenID != "" {
		// An operator token: its id is unique for good, its name only
		// among live tokens.
		u.UID = tokenID
	}
	switch role {
	case "agent":
		u.TypeID, u.Type = 4, "Service"
	case "admin":
		u.TypeID, u.Type = 2, "Admin"
	case "system":
		u.TypeID, u.Type = 3, "System"
	case "":
		u.TypeID = 0
	default:
		u.TypeID, u.Type = 1, "User"
	}
	if u.UID == "" {
		u.UID, u.Name = "unknown", ""
	}
	return u
}

// model reads the model an action recorded, from attributes "model" (a
// name, or an object with name, provider and version) or the OpenTelemetry
// GenAI keys gen_ai.request.model and gen_ai.provider.name (or
// gen_ai.system). The ai_model object needs a name and a provider.
func model(attrs map[string]any) *aiModel {
	m := &aiModel{}
	switch v := attrs["model"].(type) {
	case string:
		m.Name = v
	case map[string]any:
		m.Name, _ = v["name"].(string)
		m.Provider, _ = v["provider"].(string)
		m.Version, _ = v["version"].(string)
	}
	if m.Name == "" {
		m.Name, _ = attrs["gen_ai.request.model"].(string)
	}
	if m.Provider == "" {
		p, _ := attrs["gen_ai.provider.name"].(string)
		s, _ := attrs["gen_ai.system"].(string)
		pr, _ := attrs["provider"].(string)
		m.Provider = firstOf(p, s, pr)
	}
	if m.Name == "" || m.Provider == "" {
		return nil
	}
	return m
}

// attestationOf builds the record_integrity attestation: the leaf hash,
// the agent's signature, and the checkpoint's signers when a proof is
// given; the signature and proof bytes go to un.
func attestationOf(src Source, index uint64, l *agentlog.Leaf, leaf []byte, proof *Proof, un *unmapped) attestation {
	a := attestation{
		UID:          src.Origin + "/" + strconv.FormatUint(index, 10),
		AuthorityUID: src.Origin,
		ChainUID:     src.Origin,
		Fingerprint:  &fingerprint{AlgorithmID: 99, Algorithm: "RFC 6962 leaf hash, SHA-256(0x00 || raw_data)", Value: un.LeafHash},
	}
	if len(l.Sig) > 0 {
		a.Signatures = append(a.Signatures, signature{AlgorithmID: 99, Algorithm: "Ed25519", DeveloperUID: l.Agent})
	}
	if src.URL != "" {
		base := strings.TrimSuffix(src.URL, "/")
		un.CheckpointURL = base + "/checkpoint"
		un.EntryURL = base + "/v1/entries/" + strconv.FormatUint(index, 10)
	}
	if proof == nil {
		return a
	}
	un.Checkpoint = string(proof.Checkpoint)
	un.TreeSize = proof.TreeSize
	un.InclusionProof = proof.Path
	if un.InclusionProof == nil {
		un.InclusionProof = [][]byte{}
	}
	if src.URL != "" {
		un.ProofURL = strings.TrimSuffix(src.URL, "/") + "/v1/proof/inclusion?" +
			url.Values{"index": {strconv.FormatUint(index, 10)}, "size": {strconv.FormatUint(proof.TreeSize, 10)}}.Encode()
	}
	sigs, root := noteSigners(proof.Checkpoint)
	for _, s := range sigs {
		if root != "" {
			s.Digest = &fingerprint{AlgorithmID: 99, Algorithm: "RFC 6962 tree head (checkpoint root)", Value: root}
		}
		a.Signatures = append(a.Signatures, s)
	}
	return a
}

// noteSigners lists the signatures of a signed note (unverified: the
// reader verifies them with the keys it trusts) and the checkpoint's root
// in hex. A cosignature v1 (c2sp.org/tlog-cosignature) carries its time.
func noteSigners(cp []byte) ([]signature, string) {
	var n *note.Note
	_, err := note.Open(cp, note.VerifierList())
	var ue *note.UnverifiedNoteError
	if !errors.As(err, &ue) {
		return nil, ""
	}
	n = ue.Note
	root := ""
	if lines := strings.Split(n.Text, "\n"); len(lines) >= 3 {
		if b, err := base64.StdEncoding.DecodeString(lines[2]); err == nil {
			root = hex.EncodeToString(b)
		}
	}
	var out []signature
	for _, s := range n.UnverifiedSigs {
		sig := signature{AlgorithmID: 99, Algorithm: "Ed25519 (C2SP signed note)", DeveloperUID: fmt.Sprintf("%s+%08x", s.Name, s.Hash)}
		if b, err := base64.StdEncoding.DecodeString(s.Base64); err == nil && len(b) == 4+8+64 {
			sig.Algorithm = "Ed25519 cosignature v1 (c2sp.org/tlog-cosignature)"
			if ts := binaryBigEndian(b[4:12]); ts > 0 && ts < 1<<40 {
				sig.CreatedTime = int64(ts) * 1000
			}
		}
		out = append(out, sig)
	}
	return out, root
}

func binaryBigEndian(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Marshal encodes an event as one line of JSON, without a newline.
func Marshal(e *OCSFEvent) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
