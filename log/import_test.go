package log

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestImport copies a log's entries into an empty one: the trees, entries
// and query indexes agree; a wrong index or a bad leaf stores nothing.
func TestImport(t *testing.T) {
	ctx := context.Background()
	src := openTest(t, t.TempDir(), nil)
	defer src.Close()
	p := Principal{ID: "admin", Role: "admin", Agent: "bot-1", Session: "s1", Task: "t1"}
	for i := range 3 {
		if _, err := src.Append(ctx, p, KindAction, recs(300+i, "read")); err != nil {
			t.Fatal(err)
		}
	}
	dst := openTest(t, t.TempDir(), nil)
	defer dst.Close()
	leaves, err := src.Entries(0, src.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Import(ctx, 5, leaves[:10]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("import at the wrong index: %v, want ErrInvalid", err)
	}
	bad := [][]byte{leaves[0], []byte(`{"time":"nope"}`)}
	if err := dst.Import(ctx, 0, bad); !errors.Is(err, ErrInvalid) || dst.Size() != 0 {
		t.Fatalf("import of a bad leaf: %v, size %d", err, dst.Size())
	}
	// The three batches were sequenced at three different times.
	backwards := [][]byte{leaves[len(leaves)-1], leaves[0]}
	if err := dst.Import(ctx, 0, backwards); !errors.Is(err, ErrInvalid) || dst.Size() != 0 {
		t.Fatalf("import of leaves going back in time: %v, size %d", err, dst.Size())
	}
	for at := 0; at < len(leaves); at += 250 {
		end := min(at+250, len(leaves))
		if err := dst.Import(ctx, uint64(at), leaves[at:end]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(src.Tree().Root(), dst.Tree().Root()) || src.Size() != dst.Size() {
		t.Fatal("imported tree differs")
	}
	if err := dst.CheckIndex(ctx); err != nil {
		t.Fatalf("the imported log's indexes: %v", err)
	}
	// An append after the import continues the log.
	if _, err := dst.Append(ctx, p, KindAction, recs(1, "write")); err != nil || dst.Size() != src.Size()+1 {
		t.Fatalf("append after import: %v", err)
	}
}
