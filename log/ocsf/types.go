package ocsf

import (
	"encoding/json"

	"github.com/agentlog/agentlog"
)

// OCSFEvent is an OCSF event of one of the classes this package emits.
// Its fields are those classes' attributes; the ones a class lacks stay
// empty.
type OCSFEvent struct {
	ActivityID   int      `json:"activity_id"`
	ActivityName string   `json:"activity_name,omitempty"`
	CategoryUID  int      `json:"category_uid"`
	ClassUID     int      `json:"class_uid"`
	ClassName    string   `json:"class_name,omitempty"`
	TypeUID      int      `json:"type_uid"`
	Time         int64    `json:"time"` // milliseconds since the epoch
	Severity     int      `json:"severity_id"`
	StatusID     int      `json:"status_id,omitempty"`
	Status       string   `json:"status,omitempty"`
	StatusCode   string   `json:"status_code,omitempty"`
	StatusDetail string   `json:"status_detail,omitempty"`
	Message      string   `json:"message,omitempty"`
	Metadata     metadata `json:"metadata"`

	Actor       *actor       `json:"actor,omitempty"`
	API         *api         `json:"api,omitempty"`
	Resources   []resource   `json:"resources,omitempty"`
	Src         *endpoint    `json:"src_endpoint,omitempty"`
	HTTPRequest *httpRequest `json:"http_request,omitempty"`
	AIModel     *aiModel     `json:"ai_model,omitempty"`
	User        *user        `json:"user,omitempty"`
	Policy      *policy      `json:"policy,omitempty"`
	Session     *session     `json:"session,omitempty"`
	Service     *service     `json:"service,omitempty"`
	Entity      *entity      `json:"entity,omitempty"`
	Comment     string       `json:"comment,omitempty"`
	Finding     *findingInfo `json:"finding_info,omitempty"`
	IsAlert     *bool        `json:"is_alert,omitempty"`

	Attestations []attestation  `json:"attestation_list,omitempty"`
	RawData      string         `json:"raw_data"`
	Unmapped     map[string]any `json:"unmapped,omitempty"`
}

type metadata struct {
	Version        string   `json:"version"`
	Product        product  `json:"product"`
	UID            string   `json:"uid"`
	LogName        string   `json:"log_name,omitempty"`
	Sequence       uint64   `json:"sequence"`
	CorrelationUID string   `json:"correlation_uid,omitempty"`
	Profiles       []string `json:"profiles"`
}

type product struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version,omitempty"`
}

type actor struct {
	User    *user    `json:"user,omitempty"`
	Session *session `json:"session,omitempty"`
}

type user struct {
	UID    string `json:"uid"`
	Name   string `json:"name,omitempty"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type,omitempty"`
}

type session struct {
	UID            string `json:"uid"`
	ExpirationTime int64  `json:"expiration_time,omitempty"`
}

type api struct {
	Operation string   `json:"operation"`
	Service   *service `json:"service,omitempty"`
}

type service struct {
	Name string `json:"name"`
}

type resource struct {
	UID  string `json:"uid"`
	Name string `json:"name,omitempty"`
}

type endpoint struct {
	Name string `json:"name,omitempty"`
	IP   string `json:"ip,omitempty"`
}

type httpRequest struct {
	Method string  `json:"http_method,omitempty"`
	URL    *urlObj `json:"url,omitempty"`
}

type urlObj struct {
	Path string `json:"path,omitempty"`
}

type aiModel struct {
	Name     string `json:"name"`
	Provider string `json:"ai_provider"`
	Version  string `json:"version,omitempty"`
}

type policy struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data,omitempty"`
}

type entity struct {
	UID     string          `json:"uid,omitempty"`
	Name    string          `json:"name,omitempty"`
	Type    string          `json:"type,omitempty"`
	TypeID  int             `json:"type_id"`
	Version string          `json:"version,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type findingInfo struct {
	UID     string         `json:"uid"`
	Title   string         `json:"title,omitempty"`
	Desc    string         `json:"desc,omitempty"`
	Types   []string       `json:"types,omitempty"`
	Related []relatedEvent `json:"related_events,omitempty"`
}

type relatedEvent struct {
	UID string `json:"uid"`
}

type attestation struct {
	UID          string       `json:"uid"`
	AuthorityUID string       `json:"authority_uid"`
	ChainUID     string       `json:"chain_uid"`
	Fingerprint  *fingerprint `json:"fingerprint"`
	Signatures   []signature  `json:"signatures,omitempty"`
}

type fingerprint struct {
	AlgorithmID int    `json:"algorithm_id"`
	Algorithm   string `json:"algorithm,omitempty"`
	Value       string `json:"value"`
}

type signature struct {
	AlgorithmID  int          `json:"algorithm_id"`
	Algorithm    string       `json:"algorithm,omitempty"`
	DeveloperUID string       `json:"developer_uid,omitempty"`
	CreatedTime  int64        `json:"created_time,omitempty"`
	Digest       *fingerprint `json:"digest,omitempty"`
}

// unmapped is what OCSF has no attribute for, under unmapped.agentlog:
// the entry's own fields as the log wrote them (agentlog.Leaf, so the
// names and encodings are the wire package's: sig in base64, attributes
// as logged), its index, and the proof material.
type unmapped struct {
	*agentlog.Leaf
	Index          uint64   `json:"index"`
	LeafHash       string   `json:"leaf_hash"`
	Checkpoint     string   `json:"checkpoint,omitempty"`
	TreeSize       uint64   `json:"tree_size,omitempty"`
	InclusionProof [][]byte `json:"inclusion_proof,omitempty"`
	ProofURL       string   `json:"proof_url,omitempty"`
	CheckpointURL  string   `json:"checkpoint_url,omitempty"`
	EntryURL       string   `json:"entry_url,omitempty"`
}
