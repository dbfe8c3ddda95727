package main

import (
	"os"
	"testing"
)

// TestMain removes the binaries the end-to-end tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	agentlogBuild.Remove()
	faultBuild.Remove()
	witnessBuild.Remove()
	os.Exit(code)
}
