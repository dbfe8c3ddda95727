package vectors

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"strings"

	"filippo.io/mldsa"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ecdsaSigner is a c2sp.org/signed-note signer of key type 0x02: ECDSA
// with SHA-256, the public key in DER SPKI form, key ID the first four
// bytes of SHA-256 of that DER (as transparency-dev/formats' ECDSA
// verifier checks). Signatures are deterministic (RFC 6979: crypto/ecdsa
// signs deterministically without a random source).
type ecdsaSigner struct {
	name string
	key  *ecdsa.PrivateKey
	der  []byte
}

func newECDSASigner(name string) (*ecdsaSigner, error) {
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed("ecdsa "+name))
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return &ecdsaSigner{name: name, key: k, der: der}, nil
}

func (s *ecdsaSigner) Name() string { return s.name }

func (s *ecdsaSigner) KeyHash() uint32 {
	h := sha256.Sum256(s.der)
	return binary.BigEndian.Uint32(h[:4])
}

func (s *ecdsaSigner) Sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return s.key.Sign(nil, d[:], crypto.SHA256)
}

func (s *ecdsaSigner) VerifierKey() string {
	return fmt.Sprintf("%s+%08x+%s", s.name, s.KeyHash(), b64(append([]byte{0x02}, s.der...)))
}

// PolicyKey is one vector of the "keys" list of witness_keys.json: a
// policy naming a witness by a verifier key.
type PolicyKey struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
	// SDKReason, when set, is the reason the Python and TypeScript SDKs
	// refuse a key the Go verifier accepts (Valid): a key type they do not
	// verify yet.
	SDKReason string `json:"sdk_reason,omitempty"`
}

// WitnessKeyCheckpoint is a checkpoint vector of witness_keys.json: as in
// checkpoints.json, with time_vkey, when set, in place of the file's.
type WitnessKeyCheckpoint struct {
	Checkpoint
	TimeVKey string `json:"time_vkey,omitempty"`
}

// witnessKeys writes witness_keys.json: checkpoints cosigned by witnesses
// of each key type the Go verifier (witness/policy, through
// transparency-dev/formats/note.NewVerifier) accepts and this generator can
// sign deterministically: Ed25519 cosignature v1 (0x04), plain Ed25519
// note signatures (0x01) and ECDSA P-256 with SHA-256 (0x02); a timestamp
// key given in its 0x01 form (which the Go client's
// NewVerifierForCosignatureV1 takes as the 0x04 key); and policies whose
// witness keys must be refused.
func (g *gen) witnessKeys() error {
	if err := g.setupKeys(); err != nil {
		return err
	}
	k := g.keys
	ts := k.TimeSigner.At(vectorTime)
	w1 := g.wits[0]
	ec, err := newECDSASigner("ecdsa.witness.example")
	if err != nil {
		return err
	}
	ec2, err := newECDSASigner("ecdsa2.witness.example")
	if err != nil {
		return err
	}
	pskey, pvkey, err := note.GenerateKey(bytes.NewReader(seed("plain witness")), "plain.witness.example")
	if err != nil {
		return err
	}
	plain, err := note.NewSigner(pskey)
	if err != nil {
		return err
	}
	t := newTree(300)
	root := t.root(300)
	text := body(Origin, 300, root)
	logLine := "log " + k.LogVKey + "\n"
	wl := fmt.Sprintf("witness w1 %s\nwitness e1 %s\nwitness e2 %s\nwitness p1 %s\n", w1.VerifierKey(), ec.VerifierKey(), ec2.VerifierKey(), pvkey)
	pol := map[string]string{
		"ecdsa": logLine + wl + "quorum e1\n",
		"plain": logLine + wl + "quorum p1\n",
		"all":   logLine + wl + "group g all w1 e1 p1\nquorum g\n",
		"two":   logLine + wl + "group g 2 w1 e1 e2 p1\nquorum g\n",
	}
	// The timestamp key as a plain Ed25519 verifier key (type 0x01) of the
	// same public key.
	tv := k.TimeVKey
	name, rest, _ := strings.Cut(tv, "+")
	_, kb64, _ := strings.Cut(rest, "+")
	pub := mustB64(kb64)[1:]
	kh := sha256.Sum256(append([]byte(name+"\n\x01"), pub...))
	timeAsEd25519 := fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(kh[:4]), b64(append([]byte{0x01}, pub...)))

	ok := func(name, cp, policy string, cosigners ...string) WitnessKeyCheckpoint {
		return WitnessKeyCheckpoint{Checkpoint: Checkpoint{Name: name, Checkpoint: cp, TimeKey: true, Policy: policy, Valid: true, Size: 300, Root: b64(root), Time: vectorTime.Unix(), Cosigners: cosigners}}
	}
	no := func(name, cp, policy, reason string) WitnessKeyCheckpoint {
		return WitnessKeyCheckpoint{Checkpoint: Checkpoint{Name: name, Checkpoint: cp, TimeKey: true, Policy: policy, Reason: reason}}
	}
	all := signNote(text, k.LogSigner, ts, w1, ec, plain)
	tsAs1 := ok("timestamp key in its Ed25519 (0x01) form", signNote(text, k.LogSigner, ts), "")
	tsAs1.TimeVKey = timeAsEd25519
	vs := []WitnessKeyCheckpoint{
		ok("ECDSA P-256 witness", signNote(text, k.LogSigner, ts, ec), "ecdsa", "e1"),
		ok("plain Ed25519 witness", signNote(text, k.LogSigner, ts, plain), "plain", "p1"),
		ok("one witness of each type", all, "all", "e1", "p1", "w1"),
		ok("two ECDSA witnesses", signNote(text, k.LogSigner, ts, ec2, ec), "two", "e1", "e2"),
		ok("bad ECDSA cosignature ignored", flipSig(signNote(text, k.LogSigner, ts, ec, plain, w1), 2), "two", "p1", "w1"),
		tsAs1,
		no("bad ECDSA cosignature", flipSig(signNote(text, k.LogSigner, ts, ec), 2), "ecdsa", "quorum"),
		no("no ECDSA cosignature", signNote(text, k.LogSigner, ts, plain), "ecdsa", "quorum"),
		no("bad plain Ed25519 cosignature", flipSig(signNote(text, k.LogSigner, ts, plain), 2), "plain", "quorum"),
		no("one of each type but ECDSA", signNote(text, k.LogSigner, ts, w1, plain), "all", "quorum"),
	}
	// The ECDSA witness's valid signature of another checkpoint body.
	sig, err := ec.Sign([]byte(strings.Replace(text, "\n300\n", "\n301\n", 1)))
	if err != nil {
		return err
	}
	moved := signNote(text, k.LogSigner, ts) + fmt.Sprintf("— %s %s\n", ec.name, b64(append(binary.BigEndian.AppendUint32(nil, ec.KeyHash()), sig...)))
	vs = append(vs, no("ECDSA signature of another checkpoint", moved, "ecdsa", "quorum"))
	// An ML-DSA-44 key from a fixed seed, in the form transparency-dev/formats
	// writes (key ID: SHA-256 of name, newline, 0x06 and the public key).
	mk, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), seed("mldsa witness"))
	if err != nil {
		return err
	}
	mpub := append([]byte{0x06}, mk.PublicKey().Bytes()...)
	mname := "mldsa.witness.example"
	mldsaVKey := fmt.Sprintf("%s+%08x+%s", mname, binary.BigEndian.Uint32(sha(append([]byte(mname+"\n"), mpub...))), b64(mpub))
	sthVKey, err := fnote.RFC6962VerifierString("ct.example/log", &ec.key.PublicKey)
	if err != nil {
		return err
	}
	mkPol := func(vkey string) string { return logLine + "witness x " + vkey + "\nquorum x\n" }
	der := ec.der
	badHash := fmt.Sprintf("%s+%08x+%s", ec.name, ec.KeyHash()^1, b64(append([]byte{0x02}, der...)))
	notSPKI := fmt.Sprintf("%s+%08x+%s", ec.name, binary.BigEndian.Uint32(sha(der[:len(der)-1])), b64(append([]byte{0x02}, der[:len(der)-1]...)))
	unknownType := fmt.Sprintf("%s+%08x+%s", "u.example", binary.BigEndian.Uint32(sha(append([]byte("u.example\n\x07"), pub...))), b64(append([]byte{0x07}, pub...)))
	ps := []PolicyKey{
		{Name: "Ed25519 cosignature v1 (0x04)", Policy: mkPol(w1.VerifierKey()), Valid: true},
		{Name: "Ed25519 (0x01)", Policy: mkPol(pvkey), Valid: true},
		{Name: "ECDSA P-256 (0x02)", Policy: mkPol(ec.VerifierKey()), Valid: true},
		{Name: "ECDSA key with the wrong key ID", Policy: mkPol(badHash), Reason: "bad-key"},
		{Name: "ECDSA key that is not DER SPKI", Policy: mkPol(notSPKI), Reason: "bad-key"},
		{Name: "unknown key type 0x07", Policy: mkPol(unknownType), Reason: "unsupported-key"},
		{Name: "ML-DSA-44 cosignature v1 (0x06): Go verifies it, the SDKs do not yet", Policy: mkPol(mldsaVKey), Valid: true, SDKReason: "unsupported-key"},
		{Name: "RFC 6962 STH (0x05): Go verifies it, the SDKs do not", Policy: mkPol(sthVKey), Valid: true, SDKReason: "unsupported-key"},
	}
	return g.write("witness_keys.json", map[string]any{
		"description": "Witness and timestamp keys of every C2SP signed-note type the Go verifier accepts and agentlog's clients verify: Ed25519 cosignature v1 (0x04: timestamp || Ed25519 over \"cosignature/v1\\ntime T\\n\" and the body), plain Ed25519 (0x01: Ed25519 over the body) and ECDSA with SHA-256 (0x02: the key is DER SPKI, its key ID the first 4 bytes of SHA-256 of the DER, the signature ASN.1 DER over SHA-256 of the body). vectors: as in checkpoints.json, with time_vkey, when given, in place of the file's (a timestamp key in its 0x01 form is taken as the 0x04 key of the same public key, as transparency-dev/formats does). keys: a policy naming a witness by a verifier key, to parse or refuse: bad-key (malformed, wrong key ID, not a public key of its type), unsupported-key (a key type no client verifies); sdk_reason: the Go verifier accepts the key (valid) but the Python and TypeScript SDKs refuse it with this reason (ML-DSA-44 and RFC 6962 STH keys).",
		"log_vkey":    k.LogVKey,
		"time_vkey":   k.TimeVKey,
		"witnesses":   map[string]string{"w1": w1.VerifierKey(), "e1": ec.VerifierKey(), "e2": ec2.VerifierKey(), "p1": pvkey},
		"policies":    pol,
		"vectors":     vs,
		"keys":        ps,
	})
}

func sha(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:4]
}
