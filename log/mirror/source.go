package mirror

import (
	alog "github.com/agentlog/agentlog/log"
)

// FromLog returns the Source of a local log.
func FromLog(l *alog.Log) Source { return logSource{l} }

type logSource struct{ *alog.Log }

func (s logSource) RootAt(size uint64) ([]byte, error) { return s.Tree().RootAt(size) }
func (s logSource) ConsistencyProof(old, size uint64) ([][]byte, error) {
	return s.Tree().ConsistencyProof(old, size)
}
func (s logSource) Tile(level, index uint64, width int) ([]byte, error) {
	return s.Tree().Tile(level, index, width)
}
