package log

import (
	"context"
	"testing"
)

// TestPositionAndSetting: a position is set once and survives reopening;
// a setting is recorded once per change, with the default not recorded.
func TestPositionAndSetting(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, nil)
	key := []byte("z-test/pos")
	if p, err := l.Position(key, 7); err != nil || p != 7 {
		t.Fatalf("first Position = %d, %v", p, err)
	}
	if p, err := l.Position(key, 9); err != nil || p != 7 {
		t.Fatalf("second Position = %d, %v; want the stored 7", p, err)
	}
	if err := l.SetPosition(key, 42); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := Principal{ID: "agentlog", Role: "system"}
	skey := []byte("z-test/setting")
	for i, c := range []struct {
		rec     string
		changed bool
	}{{`{"on":false}`, false}, {`{"on":true}`, true}, {`{"on":true}`, false}, {`{"on":false}`, true}} {
		changed, err := l.RecordSetting(ctx, p, skey, "test.configured", []byte(c.rec), []byte(`{"on":false}`))
		if err != nil || changed != c.changed {
			t.Fatalf("step %d: changed %v, %v; want %v", i, changed, err, c.changed)
		}
	}
	if l.Size() != 2 {
		t.Fatalf("size %d, want 2 entries", l.Size())
	}
	l.Close()
	l = openTest(t, dir, nil)
	defer l.Close()
	if p, err := l.Position(key, 0); err != nil || p != 42 {
		t.Fatalf("after reopening, Position = %d, %v", p, err)
	}
	if changed, err := l.RecordSetting(ctx, p, skey, "test.configured", []byte(`{"on":false}`), nil); err != nil || changed {
		t.Fatalf("after reopening: changed %v, %v", changed, err)
	}
}
