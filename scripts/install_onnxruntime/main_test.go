package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Nothing here downloads: the npm path runs a fake npm.

// makeTgz returns a gzipped tar archive holding the given regular files.
func makeTgz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeLibrary is the content of the fake library: binary, larger than one tar block.
func fakeLibrary() []byte {
	b := make([]byte, 3000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return append([]byte("\x7fELF"), b...)
}

func TestExtractMember(t *testing.T) {
	member, err := npmMember("linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if want := "package/bin/napi-v6/linux/x64/libonnxruntime.so.1"; member != want {
		t.Errorf("linux/amd64 member %q, want %q", member, want)
	}
	lib := fakeLibrary()
	tgz := makeTgz(t, map[string][]byte{
		"package/package.json": []byte(`{"name": "onnxruntime-node", "version": "1.29.0"}`),
		member:                 lib,
		"package/bin/napi-v6/linux/arm64/libonnxruntime.so.1": []byte("the arm64 one"),
	})
	var out bytes.Buffer
	if err := extractMember(bytes.NewReader(tgz), member, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), lib) {
		t.Errorf("extracted %d bytes, differing from the %d of the member", out.Len(), len(lib))
	}

	missing := makeTgz(t, map[string][]byte{"package/package.json": []byte("{}")})
	err = extractMember(bytes.NewReader(missing), member, io.Discard)
	if err == nil || !strings.Contains(err.Error(), member) {
		t.Errorf("archive without the member: error %v, want one naming %s", err, member)
	}
	if err := extractMember(strings.NewReader("not gzip"), member, io.Discard); err == nil {
		t.Error("a file that is not gzip was accepted")
	}
	empty := makeTgz(t, map[string][]byte{member: nil})
	if err := extractMember(bytes.NewReader(empty), member, io.Discard); err == nil {
		t.Error("an empty member was accepted")
	}
}

func TestNPMMember(t *testing.T) {
	if m, err := npmMember("linux", "arm64"); err != nil || m != "package/bin/napi-v6/linux/arm64/libonnxruntime.so.1" {
		t.Errorf("linux/arm64: %q, %v", m, err)
	}
	for _, p := range [][2]string{{"darwin", "arm64"}, {"windows", "amd64"}, {"linux", "riscv64"}} {
		_, err := npmMember(p[0], p[1])
		if err == nil || !strings.Contains(err.Error(), p[0]+"/"+p[1]) || !strings.Contains(err.Error(), "GoMLX's installer") {
			t.Errorf("%s/%s: error %v, want one naming the platform and GoMLX's installer", p[0], p[1], err)
		}
	}
}

// TestFlags checks the defaults and the validation.
func TestFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if o.from != "auto" || o.version != "" || o.npmVersion != "1.29.0" || o.timeout != time.Minute || o.force || o.dirSet {
		t.Errorf("defaults %+v", o)
	}
	if runtime.GOOS == "linux" && !strings.HasSuffix(o.dir, filepath.Join(".local", "lib", "onnxruntime")) {
		t.Errorf("default --dir %q, want GoMLX's install folder", o.dir)
	}
	for _, args := range [][]string{
		{"--from", "npm", "--npm-version", "1.30.0"},
		{"--from", "gomlx", "--version", "1.29.0", "--timeout", "5m"},
		{"--version", "v1.29", "--force", "--dir", "/opt/onnxruntime"},
	} {
		if _, err := parseFlags(args, io.Discard); err != nil {
			t.Errorf("%v rejected: %v", args, err)
		}
	}
	if o, _ := parseFlags([]string{"--dir", "/x"}, io.Discard); o == nil || !o.dirSet {
		t.Error("--dir given but not recorded as given")
	}
	for _, args := range [][]string{
		{"--from", "github"},
		{"--dir", ""},
		{"--version", "latest"},
		{"--npm-version", ""},
		{"--npm-version", "latest"},
		{"--npm-version", "1.29.0 --registry=x"},
		{"--timeout", "0s"},
		{"--timeout", "-1s"},
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

// TestAlreadyInstalled checks that an installed library is left alone (nothing is downloaded).
func TestAlreadyInstalled(t *testing.T) {
	t.Setenv(envLibrary, "")
	dir := t.TempDir()
	target := filepath.Join(dir, "libonnxruntime.so")
	if runtime.GOOS != "linux" {
		t.Skip("the library's name differs")
	}
	if err := os.WriteFile(target, fakeLibrary(), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--dir", dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), o, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := "onnxruntime: already installed at " + target + "\n"; stdout.String() != want {
		t.Errorf("output %q, want %q", stdout.String(), want)
	}

	// The library named by $ONNXRUNTIME_SHARED_LIBRARY_PATH counts when --dir is not given.
	t.Setenv(envLibrary, target)
	o, _ = parseFlags(nil, io.Discard)
	stdout.Reset()
	if err := run(context.Background(), o, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "already installed at "+target+" ($"+envLibrary+")") {
		t.Errorf("output %q, want it to say the library of $%s is installed", stdout.String(), envLibrary)
	}

	// An empty file is not a library.
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if installedAt(target) || installedAt(dir) || installedAt(filepath.Join(dir, "missing")) {
		t.Error("an empty file, a folder or a missing file counted as installed")
	}
}

// TestNPMFallback runs the npm path with a fake npm that "downloads" a synthetic package.
func TestNPMFallback(t *testing.T) {
	member, err := npmMember(runtime.GOOS, runtime.GOARCH)
	if err != nil {
		t.Skip(err)
	}
	tmp := t.TempDir()
	tgz := filepath.Join(tmp, "package.tgz")
	lib := fakeLibrary()
	if err := os.WriteFile(tgz, makeTgz(t, map[string][]byte{member: lib}), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "bin")
	argsFile := filepath.Join(tmp, "npm-args")
	script := "#!/bin/sh\necho \"$@\" > '" + argsFile + "'\ncp '" + tgz + "' ./onnxruntime-node-1.29.0.tgz\necho onnxruntime-node-1.29.0.tgz\n"
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "npm"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+"/usr/bin"+string(os.PathListSeparator)+"/bin")
	t.Setenv(envLibrary, "")

	dir := filepath.Join(tmp, "lib", "onnxruntime")
	o, err := parseFlags([]string{"--from", "npm", "--dir", dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), o, &stdout, io.Discard); err != nil {
		t.Fatalf("%v\noutput:\n%s", err, stdout.String())
	}
	target := filepath.Join(dir, "libonnxruntime.so")
	got, err := os.ReadFile(target)
	if err != nil || !bytes.Equal(got, lib) {
		t.Fatalf("installed library: %d bytes, %v; want the member's %d bytes", len(got), err, len(lib))
	}
	if info, _ := os.Stat(target); info.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", info.Mode().Perm())
	}
	if v, _ := os.ReadFile(filepath.Join(dir, "VERSION")); string(v) != "1.29.0\n" {
		t.Errorf("VERSION %q, want 1.29.0", v)
	}
	if args, _ := os.ReadFile(argsFile); !strings.HasPrefix(string(args), "pack onnxruntime-node@1.29.0 ") {
		t.Errorf("npm ran with %q", args)
	}
	want := "onnxruntime: installed ONNX Runtime 1.29.0 from the npm package onnxruntime-node@1.29.0 at " + target + "\n"
	if !strings.HasSuffix(stdout.String(), want) {
		t.Errorf("output %q, want it to end with %q", stdout.String(), want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d entries in %s, want the library and VERSION only", len(entries), dir)
	}

	// Without npm: an error saying how to get it, or the library.
	t.Setenv("PATH", t.TempDir())
	o.force = true
	err = run(context.Background(), o, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "npm is not installed") || !strings.Contains(err.Error(), envLibrary) {
		t.Errorf("without npm: error %v, want one naming npm and $%s", err, envLibrary)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, lib) {
		t.Error("the failed install changed the installed library")
	}
}

// TestMoveInto checks how the files of GoMLX's installer are moved into the install folder.
func TestMoveInto(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for name, data := range map[string]string{"libonnxruntime.so.1.30.0": "lib", "VERSION": "1.30.0\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("libonnxruntime.so.1.30.0", filepath.Join(src, "libonnxruntime.so")); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	if err := os.Mkdir(filepath.Join(src, ".extracting-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "libonnxruntime.so"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := moveInto(src, dst, "libonnxruntime.so"); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "libonnxruntime.so")); err != nil || string(got) != "lib" {
		t.Errorf("libonnxruntime.so reads %q, %v; want the new library through the link", got, err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".extracting-1")); err == nil {
		t.Error("a hidden folder was moved")
	}
}

func TestShortReason(t *testing.T) {
	long := errors.New("failed:\n  - " + strings.Repeat("x", 300))
	s := shortReason(long)
	if strings.Contains(s, "\n") || len(s) > 210 || !strings.HasPrefix(s, "failed: - x") {
		t.Errorf("shortReason = %q", s)
	}
	wrapped := fmt.Errorf("failed to fetch the latest release: %w", &url.Error{Op: "Head", URL: "https://github.com/x",
		Err: &net.DNSError{Err: "no such host", Name: "github.com", IsNotFound: true}})
	if s := shortReason(wrapped); s != "lookup github.com: no such host" {
		t.Errorf("shortReason = %q, want the innermost cause", s)
	}
}
