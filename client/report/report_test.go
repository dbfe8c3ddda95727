package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func leafAt(t time.Time, rest string) []byte {
	return []byte(fmt.Sprintf(`{"time":"%s",%s}`, t.UTC().Format("2006-01-02T15:04:05.000000000Z"), rest))
}

// period builds an input from leaf bodies, one second apart.
func period(bodies ...string) Input {
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	in := Input{Origin: "example.com/log", TreeSize: uint64(len(bodies)), Root: make([]byte, 32), Start: 0, End: uint64(len(bodies)), Complete: true,
		Checkpoint: []byte("example.com/log\n3\nAAAA\n\n\u2014 example.com/log abcd\n\u2014 example.com/log/time efgh\n"),
		From:       t0, To: t0.Add(24 * time.Hour), Zone: "Europe/Paris", Generated: t0.Add(48 * time.Hour)}
	for i, b := range bodies {
		in.Entries = append(in.Entries, Entry{Index: uint64(i), Leaf: leafAt(t0.Add(time.Duration(i)*time.Second), b)})
	}
	return in
}

func TestCompute(t *testing.T) {
	in := period(
		`"kind":"agent","principal":"admin","role":"admin","agent":"bot","action":"agent.registered","attributes":{"owner":"team"}`,
		`"kind":"agent","principal":"alice","role":"approver","token_id":"tok-7","agent":"bot","action":"agent.approved"`,
		`"kind":"agent","principal":"admin","role":"admin","agent":"late","action":"agent.registered"`,
		`"kind":"session","principal":"bot","role":"agent","agent":"bot","session":"s1","task":"t","action":"session.opened","attributes":{"expires":"2026-11-02T10:00:00Z"}`,
		`"kind":"action","principal":"bot","role":"agent","agent":"bot","session":"s1","task":"t","seq":1,"action":"db.query"`,
		`"kind":"action","principal":"bot","role":"agent","agent":"bot","session":"s1","task":"t","seq":3,"action":"db.query"`,
		`"kind":"denied","principal":"","action":"append","attributes":{"reason":"forged","method":"POST","path":"/v1/entries"}`,
		`"kind":"alert","principal":"agentlog","role":"system","agent":"bot","action":"alert.scope","attributes":{"rule":"scope","entry":5,"detail":"outside"}`,
		`"kind":"agent","principal":"admin","role":"admin","agent":"bot","action":"agent.revoked"`,
		`"kind":"action","principal":"bot","role":"agent","agent":"bot","session":"s1","task":"t","seq":4,"action":"db.query"`,
		`"kind":"system","principal":"agentlog","role":"system","action":"anomaly.configured","attributes":{"enabled":false}`,
		`"kind":"change","principal":"admin","role":"admin","agent":"bot","config":"sha256:ab","action":"change.proposed","attributes":{"change":"c1"}`,
		`"kind":"change","principal":"admin","role":"admin","agent":"bot","config":"sha256:ab","action":"change.approved","attributes":{"change":"c1","self_approved":true}`,
		`"kind":"action","principal":"bot2","role":"agent","agent":"bot2","session":"s2","config":"sha256:ab","action":"db.query"`,
	)
	r, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]uint64{
		"CC6.1": {6},    // the refused attempt
		"CC6.2": {2},    // registered, never approved
		"CC6.3": {9, 3}, // an action after revocation; the session expired unclosed
		"CC7.2": {7, 10},
		"CC7.3": {5},  // seq 3 follows 1
		"CC8.1": {12}, // self-approved
	}
	// Who approved: the operator token's name and id.
	for _, s := range r.Sections {
		if s.ID == "CC6.2" {
			if row := s.Tables[0].Rows[0]; row[0] != "bot" || row[5] != "alice (token tok-7)" {
				t.Errorf("CC6.2 row %q, want bot approved by alice (token tok-7)", row)
			}
		}
	}
	for _, s := range r.Sections {
		var got []uint64
		for _, e := range s.Exceptions {
			got = append(got, e.Index)
		}
		if fmt.Sprint(got) != fmt.Sprint(want[s.ID]) {
			t.Errorf("%s exceptions %v (%+v), want %v", s.ID, got, s.Exceptions, want[s.ID])
		}
	}
	var cc81 Section
	for _, s := range r.Sections {
		if s.ID == "CC8.1" {
			cc81 = s
		}
	}
	if cc81.Counts[0].Value != 2 || cc81.Counts[2].Value != 1 || len(cc81.Tables) != 2 || cc81.Tables[1].Rows[0][0] != "sha256:ab" {
		t.Errorf("CC8.1 %+v", cc81)
	}
	if r.Signers[0] != "example.com/log" || len(r.Signers) != 2 {
		t.Errorf("signers %v", r.Signers)
	}
	// Monday 09:00 UTC is 10:00 in Paris.
	if r.Heatmap[0][10] != 4 {
		t.Errorf("heatmap %v", r.Heatmap)
	}
	back, err := Parse(r.JSON())
	if err != nil || !bytes.Equal(back.JSON(), r.JSON()) {
		t.Errorf("report.json does not round-trip: %v", err)
	}
	if !strings.Contains(string(r.HTML()), `<section id="CC8.1">`) {
		t.Error("HTML lacks CC8.1")
	}
}

func TestComputeRefuses(t *testing.T) {
	in := period(`"kind":"action","action":"a"`, `"kind":"action","action":"b"`)
	in.Entries = in.Entries[1:]
	if _, err := Compute(in); err == nil {
		t.Error("a period with a missing entry was accepted")
	}
	in = period(`"kind":"action","action":"a"`)
	in.Entries[0].Leaf = []byte("not json")
	if _, err := Compute(in); err == nil {
		t.Error("a malformed leaf was accepted")
	}
	in = period(`"kind":"action","action":"a"`)
	in.Zone = "Mars/Olympus"
	if _, err := Compute(in); err == nil {
		t.Error("an unknown zone was accepted")
	}
}

// FuzzCompute: any leaf bytes give a report or an error, never a panic,
// and a report always renders and parses back.
func FuzzCompute(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-02T09:00:00.000000000Z","kind":"alert","attributes":{"rule":"scope","entry":1}}`))
	f.Add([]byte(`{"time":"2026-11-02T09:00:00.000000000Z","kind":"session","action":"session.opened","attributes":{"expires":3}}`))
	f.Add([]byte(`{"kind":"action","attributes":[1,2]}`))
	f.Fuzz(func(t *testing.T, leaf []byte) {
		in := period(`"kind":"action","action":"a"`)
		in.Entries = append(in.Entries, Entry{Index: 1, Leaf: leaf})
		in.End = 2
		r, err := Compute(in)
		if err != nil {
			return
		}
		r.HTML()
		if _, err := Parse(r.JSON()); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"format":"agentlog-report/v1","sections":[]}`))
	f.Add([]byte(`{"format":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := Parse(b); err == nil {
			r.HTML()
		}
	})
}
