package witness_test

import (
	"bytes"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/witness/policy"
)

// A policy needing one of two witnesses, and a checkpoint of the empty tree
// before and after a witness cosigned it. The keys come from fixed seeds so
// the output is stable.
func ExamplePolicy_Verify() {
	seed := func(b byte) *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{b}, 32)) }
	logSKey, logVKey, _ := note.GenerateKey(seed(1), "example.com/log")
	w1SKey, w1VKey, _ := checkpoint.GenerateTimeKey(seed(2), "w1.example")
	_, w2VKey, _ := checkpoint.GenerateTimeKey(seed(3), "w2.example")

	p, err := policy.Parse(fmt.Appendf(nil, `# example policy
log %s https://log.example.com
witness W1 %s https://w1.example
witness W2 %s https://w2.example
group Q any W1 W2
quorum Q
`, logVKey, w1VKey, w2VKey))
	if err != nil {
		panic(err)
	}

	logSigner, _ := note.NewSigner(logSKey)
	w1, _ := checkpoint.NewTimeSigner(w1SKey, func() time.Time { return time.Unix(1767323045, 0) })
	body := "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"

	logSigned, _ := note.Sign(&note.Note{Text: body}, logSigner)
	_, err = p.Verify(logSigned)
	fmt.Println(err)

	cosigned, _ := note.Sign(&note.Note{Text: body}, logSigner, w1)
	v, err := p.Verify(cosigned)
	fmt.Println(v.Origin, v.Size, v.Cosigners[0].Name, err)
	fmt.Print(string(cosigned))
	// Output:
	// the witness quorum is not met: checkpoint example.com/log size 0 has valid cosignatures from 0 witnesses of the policy
	// example.com/log 0 W1 <nil>
	// example.com/log
	// 0
	// 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
	//
	// — example.com/log m+XTxucYSiNuRvCVt2ZOCAgI+6rbvdUZF/wq/FFzTxp5aOBmMzUYAu9M5FwOpTu763a3Dpg2vMM8zOWJAmshLUKn/wo=
	// — w1.example wkTwFAAAAABpVzWlpjuSVGsGjhk/v8nNMEhOC2EbEauMHoKkCYlNFnR/sSO1y9ppTSPQP1O61UMdSjYAas+oPTQBYKN1FFuRUhzsAg==
}
