package main

import (
	"errors"
	"flag"
	"io"
	"testing"
)

// TestFlags checks the defaults and the validation; nothing is downloaded.
func TestFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if o.plugin != "cuda13" || o.path != "~/.local/lib/go-xla" || o.version != "latest" || !o.cache {
		t.Errorf("defaults %+v", o)
	}
	for _, args := range [][]string{
		{"--plugin", "cuda12", "--path", "/usr/local/lib/go-xla"},
		{"--plugin", "cpu", "--path", "/opt/x/go-xla/"},
		{"--version", "0.8.1", "--verbosity", "2"},
	} {
		if _, err := parseFlags(args, io.Discard); err != nil {
			t.Errorf("%v rejected: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"--plugin", "cuda"},
		{"--plugin", "rocm"},
		{"--path", "/usr/local/lib"},
		{"--version", ""},
		{"--verbosity", "3"},
		{"extra-argument"},
		{"--no-such-flag"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parseFlags([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}
