package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/log/identity"
)

// session is what an agent's session credential stands for, as the log
// answered GET /v1/sessions/current.
type session struct {
	agent, id, task string
	expires         time.Time
	scope           *identity.CompiledScope
	checked         time.Time // when the log last confirmed it
}

// sessions authenticates session credentials against the log and keeps
// each answer for a short while (SessionCache), so that a busy agent costs
// the log one check per interval, not one per call. A confirmation is
// renewed in the background once it is half that old, so a busy agent's
// calls do not wait for the check; calls that find none valid share one
// check of their credential. Credentials are held only as SHA-256 hashes.
// Refusals are not kept: the log records each refused attempt
// (rate-limited) as a denied entry.
type sessions struct {
	log string
	hc  *http.Client
	ttl time.Duration
	// timeout bounds one check (the log timeout).
	timeout time.Duration
	now     func() time.Time
	m       *metrics

	mu     sync.Mutex
	byID   map[[32]byte]*session
	checks map[[32]byte]*check // in progress
}

// check is one question to the log about a credential, which concurrent
// calls share.
type check struct {
	done chan struct{}
	se   *session
	err  error
}

// maxSessions bounds the cache; beyond it, expired entries are swept and
// then the cache is cleared.
const maxSessions = 100000

func bearer(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(a) <= len(p) || !strings.EqualFold(a[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(a[len(p):]), true
}

// authenticate returns the session of cred. An error wraps errRefused
// when the log refused the credential and errLogDown when it could not be
// asked; with errLogDown, a session the log confirmed before (and not yet
// expired) is also returned, for fail_open routes.
func (s *sessions) authenticate(ctx context.Context, cred string) (*session, error) {
	if !strings.HasPrefix(cred, agentlog.SessionPrefix) {
		return nil, fmt.Errorf("%w: the gateway takes an agentlog session credential (%s...)", errRefused, agentlog.SessionPrefix)
	}
	k := sha256.Sum256([]byte(cred))
	now := s.now()
	s.mu.Lock()
	se := s.byID[k]
	if se != nil && now.Sub(se.checked) < s.ttl && now.Before(se.expires) {
		if now.Sub(se.checked) >= s.ttl/2 && s.checks[k] == nil {
			s.startLocked(k, cred, se) // renewed before it lapses
		}
		s.mu.Unlock()
		return se, nil
	}
	c := s.checks[k]
	if c == nil {
		c = s.startLocked(k, cred, se)
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.se, c.err
	case <-ctx.Done():
		if se != nil && now.Before(se.expires) {
			return se, fmt.Errorf("%w: %w", errLogDown, ctx.Err())
		}
		return nil, fmt.Errorf("%w: %w", errLogDown, ctx.Err())
	}
}

// startLocked starts a check of cred (key k; prev is what the cache holds
// for it, if anything), with s.mu held. It runs detached from the calls
// waiting for it, bounded by the log timeout.
func (s *sessions) startLocked(k [32]byte, cred string, prev *session) *check {
	if s.checks == nil {
		s.checks = map[[32]byte]*check{}
	}
	c := &check{done: make(chan struct{})}
	s.checks[k] = c
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		c.se, c.err = s.ask(ctx, k, cred, prev)
		cancel()
		s.mu.Lock()
		delete(s.checks, k)
		s.mu.Unlock()
		close(c.done)
	}()
	return c
}

// ask asks the log about cred and caches a confirmation. An error wraps
// errRefused when the log refused the credential (the cache then forgets
// it) and errLogDown when it could not be asked; with errLogDown, prev is
// also returned if it has not expired.
func (s *sessions) ask(ctx context.Context, k [32]byte, cred string, prev *session) (*session, error) {
	se := prev
	now := s.now()
	c, _ := client.New(s.log, client.WithToken(cred), client.WithHTTPClient(s.hc))
	cs, err := c.CurrentSession(ctx)
	if err != nil {
		err = classify(err)
		if errors.Is(err, errRefused) {
			s.m.sessionAsks.WithLabelValues("refused").Inc()
			s.mu.Lock()
			delete(s.byID, k)
			s.mu.Unlock()
			return nil, err
		}
		s.m.sessionAsks.WithLabelValues("log_down").Inc()
		if se != nil && now.Before(se.expires) {
			return se, err
		}
		return nil, err
	}
	s.m.sessionAsks.WithLabelValues("ok").Inc()
	var sc identity.Scope
	if len(cs.Scope) > 0 && string(cs.Scope) != "null" {
		if err := jsonv2.Unmarshal(cs.Scope, &sc); err != nil {
			return nil, fmt.Errorf("%w: the log's answer about the session: %w", errLogDown, err)
		}
	}
	se = &session{agent: cs.Agent, id: cs.Session, task: cs.Task, expires: cs.Expires, scope: sc.Compile(), checked: now}
	s.mu.Lock()
	if len(s.byID) >= maxSessions {
		for k, v := range s.byID {
			if !now.Before(v.expires) || now.Sub(v.checked) >= s.ttl {
				delete(s.byID, k)
			}
		}
		if len(s.byID) >= maxSessions {
			clear(s.byID)
		}
	}
	s.byID[k] = se
	s.mu.Unlock()
	return se, nil
}

// jsonString is a JSON value for records built by the gateway.
func jsonMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only values the gateway builds are marshalled.
		panic(fmt.Sprintf("gateway: marshalling a record: %v", err))
	}
	return b
}
