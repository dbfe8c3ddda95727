package main

import (
	"os"
	"testing"
)

// TestMain removes the binary the end-to-end tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	witnessBuild.Remove()
	os.Exit(code)
}
