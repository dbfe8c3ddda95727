package witness

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// AddSignatures returns the signed note raw with the signature lines sigs
// appended, skipping lines raw already has. sigs is what a witness answers
// to add-checkpoint: zero or more lines "— <name> <base64>\n". AddSignatures
// checks the shape of the lines, not the signatures: verify them (as
// [Policy.Verify] does) before trusting the result.
func AddSignatures(raw []byte, sigs ...[]byte) ([]byte, error) {
	i := bytes.Index(raw, []byte("\n\n"))
	if i < 0 || len(raw) == 0 || raw[len(raw)-1] != '\n' {
		return nil, errors.New("not a signed note: no blank line before the signatures, or no final newline")
	}
	have := map[string]bool{}
	for _, l := range strings.SplitAfter(string(raw[i+2:]), "\n") {
		have[l] = true
	}
	out := append([]byte(nil), raw...)
	for _, s := range sigs {
		lines, err := SignatureLines(s)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			if !have[l] {
				have[l] = true
				out = append(out, l...)
			}
		}
	}
	return out, nil
}

// SignatureLines splits b into note signature lines, each of the form
// "— <name> <base64>\n", and fails if any line is not of that form.
func SignatureLines(b []byte) ([]string, error) {
	var out []string
	for len(b) > 0 {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		if !ok {
			return nil, errors.New("a signature line does not end in a newline")
		}
		name, sig, ok := strings.Cut(strings.TrimPrefix(string(line), "— "), " ")
		if !bytes.HasPrefix(line, []byte("— ")) || !ok || name == "" || sig == "" ||
			strings.ContainsAny(name, " +\t") || strings.ContainsAny(sig, " \t") {
			return nil, fmt.Errorf("%q is not a note signature line", truncate(line))
		}
		out = append(out, string(line)+"\n")
		b = rest
	}
	return out, nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
