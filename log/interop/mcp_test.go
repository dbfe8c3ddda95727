package interop

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/proctest"
	"github.com/agentlog/agentlog/log/gateway"
)

var agentlogBuild proctest.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	agentlogBuild.Remove()
	os.Exit(code)
}

func agentlogBinary(t *testing.T) string {
	return agentlogBuild.Get(t, "agentlog", "../../cmd/agentlog")
}

// logProc is a running "agentlog serve" with an admin client.
type logProc struct {
	*proctest.Proc
	data  string
	admin *client.Client
}

func startLog(t *testing.T, flags ...string) *logProc {
	t.Helper()
	data := t.TempDir()
	p := proctest.Start(t, agentlogBinary(t), "agentlog listening on ", append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data,
		"--ntp", "127.0.0.1:1", "--checkpoint-interval", "100ms"}, flags...)...)
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	adm, _ := client.New(p.URL, client.WithToken(strings.TrimSpace(string(tok))))
	return &logProc{Proc: p, data: data, admin: adm}
}

// openSession registers and approves agent id with scope (JSON or "")
// and opens a session; it returns the session credential.
func openSession(t *testing.T, ctx context.Context, l *logProc, id, scope string) string {
	t.Helper()
	key, _ := agentlog.GenerateAgentKey(id)
	reg := client.AgentRegistration{ID: id, Owner: "platform", PublicKey: key.Public().(ed25519.PublicKey)}
	if scope != "" {
		reg.Scope = json.RawMessage(scope)
	}
	if _, err := l.admin.RegisterAgent(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := l.admin.ApproveAgent(ctx, id); err != nil {
		t.Fatal(err)
	}
	a, err := client.NewAgent(l.URL, client.AgentConfig{ID: id, Key: key, Task: "ticket-1"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s.Credential
}

// leaf returns the leaf at index i (admin credential).
func (l *logProc) leaf(t *testing.T, i uint64) map[string]any {
	t.Helper()
	b, err := l.admin.Entry(context.Background(), i)
	if err != nil {
		t.Fatalf("entry %d: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// verifyReceipt checks the receipt against the log: the leaf it names
// hashes to its leaf hash, and an inclusion proof of it verifies against
// a checkpoint signed by the log's key. It returns the leaf.
func (l *logProc) verifyReceipt(t *testing.T, receipt string) map[string]any {
	t.Helper()
	rc, err := gateway.ParseReceipt(receipt)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	leaf, err := l.admin.Entry(ctx, rc.Index)
	if err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256(append([]byte{0}, leaf...)); !bytes.Equal(h[:], rc.LeafHash) {
		t.Fatalf("receipt %q does not name leaf %d", receipt, rc.Index)
	}
	pub, _ := os.ReadFile(filepath.Join(l.data, "log.pub"))
	v, err := client.NewVerifier(string(pub), "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cp, err := l.admin.VerifiedCheckpoint(ctx, v)
		if err == nil && cp.Size > rc.Index {
			if err := l.admin.VerifyInclusion(ctx, cp, rc.Index, leaf); err != nil {
				t.Fatalf("inclusion of receipt %q: %v", receipt, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers index %d: %v", rc.Index, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var m map[string]any
	json.Unmarshal(leaf, &m)
	return m
}

// tools is an MCP server built with the official SDK, counting calls and
// remembering what it was sent.
type tools struct {
	hs        *httptest.Server
	calls     atomic.Int64
	mu        sync.Mutex
	sawHeader []string // every header value it received
	args      map[string]json.RawMessage
}

func startTools(t *testing.T, jsonResponse bool) *tools {
	t.Helper()
	tl := &tools{args: map[string]json.RawMessage{}}
	s := mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "1.0.0"}, nil)
	handler := func(name string, isError bool) mcp.ToolHandler {
		return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			tl.calls.Add(1)
			tl.mu.Lock()
			tl.args[name] = append(json.RawMessage(nil), req.Params.Arguments...)
			tl.mu.Unlock()
			return &mcp.CallToolResult{IsError: isError, Content: []mcp.Content{&mcp.TextContent{Text: name + " done"}}}, nil
		}
	}
	schema := json.RawMessage(`{"type":"object","properties":{"customer_id":{"type":"string"}}}`)
	s.AddTool(&mcp.Tool{Name: "lookup", InputSchema: schema}, handler("lookup", false))
	s.AddTool(&mcp.Tool{Name: "delete_customer", InputSchema: schema}, handler("delete_customer", false))
	s.AddTool(&mcp.Tool{Name: "broken", InputSchema: schema}, handler("broken", true))
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: jsonResponse})
	tl.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tl.mu.Lock()
		for _, vv := range r.Header {
			tl.sawHeader = append(tl.sawHeader, vv...)
		}
		tl.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(tl.hs.Close)
	return tl
}

func (tl *tools) sawCredential() bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, v := range tl.sawHeader {
		if strings.Contains(v, agentlog.SessionPrefix) {
			return true
		}
	}
	return false
}

// startGateway runs "agentlog gateway" with the configuration cfg.
func startGateway(t *testing.T, logURL, cfg string) *proctest.Proc {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gateway.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return proctest.Start(t, agentlogBinary(t), "agentlog gateway listening on ", "gateway", "--log", logURL, "--listen", "127.0.0.1:0", "--config", p)
}

// bearer adds the agent's session credential to every request and keeps
// the receipts the gateway answered with.
type bearer struct {
	cred     string
	mu       sync.Mutex
	receipts []string
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.cred)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		b.mu.Lock()
		b.receipts = append(b.receipts, resp.Header.Values(gateway.ReceiptHeader)...)
		b.mu.Unlock()
	}
	return resp, err
}

func connect(t *testing.T, url, cred string) (*mcp.ClientSession, *bearer) {
	t.Helper()
	b := &bearer{cred: cred}
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1.0.0"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: b}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, b
}

func receiptOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	s, _ := res.Meta[gateway.MetaReceipt].(string)
	if s == "" {
		t.Fatalf("no %s in the result's _meta: %v", gateway.MetaReceipt, res.Meta)
	}
	return s
}

func sha256Compact(t *testing.T, raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(h[:])
}

func TestMCPThroughGateway(t *testing.T) {
	for _, jsonResponse := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonResponse), func(t *testing.T) {
			lg := startLog(t)
			cred := openSession(t, context.Background(), lg, "support-bot", `{"tools":["lookup","broken"]}`)
			up := startTools(t, jsonResponse)
			gw := startGateway(t, lg.URL, `{"routes": {
				"crm": {"upstream": "mcp+`+up.hs.URL+`", "scope": "enforce", "resource_args": ["customer_id"]},
				"crmrec": {"upstream": "mcp+`+up.hs.URL+`"}}}`)
			ctx := context.Background()
			cs, b := connect(t, gw.URL+"/crm", cred)

			// A tool call goes through, recorded with the agent, tool,
			// resource, arguments digest and outcome; the receipt proves it.
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "lookup", Arguments: map[string]any{"customer_id": "42"}})
			if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "lookup done" {
				t.Fatalf("lookup: %v %+v", err, res)
			}
			leaf := lg.verifyReceipt(t, receiptOf(t, res))
			a, _ := leaf["attributes"].(map[string]any)
			if leaf["kind"] != "action" || leaf["agent"] != "support-bot" || leaf["action"] != "mcp.tools/call" || leaf["tool"] != "lookup" ||
				leaf["resource"] != "42" || leaf["outcome"] != "success" || a["mcp.method.name"] != "tools/call" ||
				a["mcp.arguments.sha256"] != sha256Compact(t, up.args["lookup"]) || a["mcp.session.id"] == nil {
				t.Fatalf("leaf %v", leaf)
			}
			b.mu.Lock()
			hdr := b.receipts[len(b.receipts)-1]
			b.mu.Unlock()
			if hdr != receiptOf(t, res) {
				t.Fatalf("header receipt %q, _meta receipt %q", hdr, receiptOf(t, res))
			}

			// A tool's own error is recorded as tool_error.
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "broken", Arguments: map[string]any{"customer_id": "7"}})
			if err != nil || !res.IsError {
				t.Fatalf("broken: %v %+v", err, res)
			}
			if leaf := lg.verifyReceipt(t, receiptOf(t, res)); leaf["outcome"] != "tool_error" {
				t.Fatalf("leaf %v", leaf)
			}

			// Outside the declared scope: refused with enforce, never reaching
			// the server, and the refusal recorded.
			calls := up.calls.Load()
			_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "delete_customer", Arguments: map[string]any{"customer_id": "42"}})
			if err == nil || !strings.Contains(err.Error(), "outside") {
				t.Fatalf("out-of-scope call with enforce: %v", err)
			}
			if up.calls.Load() != calls {
				t.Fatal("a refused call reached the MCP server")
			}
			b.mu.Lock()
			refusal := b.receipts[len(b.receipts)-1]
			b.mu.Unlock()
			if leaf := lg.verifyReceipt(t, refusal); leaf["outcome"] != "denied" || leaf["tool"] != "delete_customer" {
				t.Fatalf("refusal leaf %v", leaf)
			}

			// With scope=record the same call goes through, flagged.
			cs2, _ := connect(t, gw.URL+"/crmrec", cred)
			res, err = cs2.CallTool(ctx, &mcp.CallToolParams{Name: "delete_customer", Arguments: map[string]any{"customer_id": "42"}})
			if err != nil || res.IsError {
				t.Fatalf("out-of-scope call with record: %v %+v", err, res)
			}
			leaf = lg.verifyReceipt(t, receiptOf(t, res))
			if a, _ := leaf["attributes"].(map[string]any); leaf["outcome"] != "success" || a["gateway.scope"] != "outside" {
				t.Fatalf("leaf %v", leaf)
			}
			// and the log's scope rule raises an alert naming its entry.
			rc, _ := gateway.ParseReceipt(receiptOf(t, res))
			deadline := time.Now().Add(30 * time.Second)
			for alerted := false; !alerted; {
				if _, err := lg.admin.QueryAll(ctx, url.Values{"action": {"alert.scope"}}, 0, func(m client.QueryMatch) error {
					var al struct{ Attributes struct{ Entry *uint64 } }
					if json.Unmarshal(m.Entry, &al) == nil && al.Attributes.Entry != nil && *al.Attributes.Entry == rc.Index {
						alerted = true
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if !alerted && time.Now().After(deadline) {
					t.Fatalf("no scope alert names entry %d, the out-of-scope call recorded with scope=record", rc.Index)
				}
				time.Sleep(20 * time.Millisecond) // polling another process
			}
			// tools/list is recorded too (no tool: it is not a tool call).
			if _, err := cs2.ListTools(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if up.sawCredential() {
				t.Fatal("the MCP server saw the agent's agentlog session credential")
			}
		})
	}
}

// TestMCPFailClosed: with the log stopped, a record=before route refuses
// calls and nothing reaches the MCP server.
func TestMCPFailClosed(t *testing.T) {
	lg := startLog(t)
	cred := openSession(t, context.Background(), lg, "support-bot", "")
	up := startTools(t, false)
	gw := startGateway(t, lg.URL, `{"routes": {"crm": {"upstream": "mcp+`+up.hs.URL+`", "record": "before"}}}`)
	ctx := context.Background()
	cs, _ := connect(t, gw.URL+"/crm", cred)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "lookup", Arguments: map[string]any{"customer_id": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := lg.verifyReceipt(t, receiptOf(t, res))
	if a, _ := leaf["attributes"].(map[string]any); a["gateway.phase"] != "request" {
		t.Fatalf("record=before: the receipt names %v", leaf)
	}
	outcome, _ := res.Meta[gateway.MetaOutcomeReceipt].(string)
	if l2 := lg.verifyReceipt(t, outcome); l2["outcome"] != "success" {
		t.Fatalf("outcome leaf %v", l2)
	}
	lg.Kill()
	calls := up.calls.Load()
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "lookup", Arguments: map[string]any{"customer_id": "2"}})
	if err == nil || !strings.Contains(err.Error(), "Bad Gateway") { // 502, with a JSON-RPC error body
		t.Fatalf("with the log stopped: %v", err)
	}
	// The answer is a JSON-RPC error naming the failure.
	req, _ := http.NewRequest("POST", gw.URL+"/crm", strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"lookup"}}`))
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rpc struct {
		ID    int
		Error struct{ Code int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&rpc); err != nil || resp.StatusCode != 502 || rpc.ID != 9 || rpc.Error.Code != gateway.CodeNotRecorded {
		t.Fatalf("raw call with the log stopped: %d %+v %v", resp.StatusCode, rpc, err)
	}
	if up.calls.Load() != calls {
		t.Fatal("record=before: a call reached the MCP server while the log was stopped")
	}
}

// TestMCPGatewayKilled: the gateway is killed with SIGKILL in the middle of
// a load; every call whose answer reached the agent is in the log.
func TestMCPGatewayKilled(t *testing.T) {
	lg := startLog(t)
	cred := openSession(t, context.Background(), lg, "load-bot", "")
	up := startTools(t, false)
	gw := startGateway(t, lg.URL, `{"routes": {"crm": {"upstream": "mcp+`+up.hs.URL+`"}}}`)
	ctx := context.Background()
	const workers = 16
	var mu sync.Mutex
	var receipts []string
	var wg sync.WaitGroup
	killed := make(chan struct{})
	enough := make(chan struct{})
	var once sync.Once
	for w := range workers {
		cs, _ := connect(t, gw.URL+"/crm", cred)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "lookup", Arguments: map[string]any{"customer_id": fmt.Sprintf("%d-%d", w, i)}})
				if err != nil {
					select {
					case <-killed:
						return
					default:
						t.Errorf("call before the kill: %v", err)
						return
					}
				}
				rc, _ := res.Meta[gateway.MetaReceipt].(string)
				mu.Lock()
				receipts = append(receipts, rc)
				if len(receipts) >= 200 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	<-enough
	close(killed)
	gw.Kill()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, rc := range receipts {
		r, err := gateway.ParseReceipt(rc)
		if err != nil {
			t.Fatalf("answer without a valid receipt: %q", rc)
		}
		leaf, err := lg.admin.Entry(ctx, r.Index)
		if err != nil {
			t.Fatalf("receipt %q: %v", rc, err)
		}
		if h := sha256.Sum256(append([]byte{0}, leaf...)); !bytes.Equal(h[:], r.LeafHash) {
			t.Fatalf("receipt %q names another leaf", rc)
		}
	}
	t.Logf("%d calls answered before the kill, all in the log", len(receipts))
}
