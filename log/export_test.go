package log

// Failure hooks of the storage layer, for tests only.

// SetCommitFailure makes every batch's commit fail with the error f
// returns instead of committing, until called again with nil.
func (l *Log) SetCommitFailure(f func() error) {
	if f == nil {
		l.seq.failCommit.Store(nil)
		return
	}
	l.SetCommitHook(func(func() error) error { return f() })
}

// SetCommitHook makes every commit of the sequencer's write transactions
// call f with the real commit, until called again with nil.
func (l *Log) SetCommitHook(f func(commit func() error) error) {
	if f == nil {
		l.seq.failCommit.Store(nil)
		return
	}
	l.seq.failCommit.Store(&f)
}

// SetFreeSpace makes the disk guard see free bytes of free space, or the
// real free space again when free < 0.
func (l *Log) SetFreeSpace(free int64) {
	if free < 0 {
		l.disk.statfs.Store(nil)
		return
	}
	f := func(string) (int64, error) { return free, nil }
	l.disk.statfs.Store(&f)
}
