package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the binaries the end-to-end tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range []string{agentlogBuild.path, witnessBuild.path} {
		if p != "" {
			os.RemoveAll(filepath.Dir(p))
		}
	}
	os.Exit(code)
}
