// Command install_onnxruntime installs the ONNX Runtime shared library that the project's ONNX
// engine loads (GoMLX's compute-onnx backend; package backend picks it when the library is
// installed), into the folder where package backend and GoMLX look for it: ~/.local/lib/onnxruntime
// on Linux. scripts/setup.sh runs it.
//
//	go run ./scripts/install_onnxruntime                  # GoMLX's installer, else the npm package
//	go run ./scripts/install_onnxruntime --from npm       # only the npm package
//	go run ./scripts/install_onnxruntime --dir /opt/ort   # elsewhere; then set ONNXRUNTIME_SHARED_LIBRARY_PATH
//
// It does nothing when the library is already there (--force re-installs it). Otherwise it tries
// GoMLX's installer (github.com/gomlx/compute-onnx/support/onnxruntime, which downloads a release
// from github.com) for at most --timeout, and where that fails, e.g. on machines whose only way out
// is a package registry, it fetches the npm package onnxruntime-node with `npm pack` and takes the
// CPU library for linux/amd64 or linux/arm64 out of it. The last line says which source it used.
// It installs the CPU library only (no CUDA provider).
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
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gomlx/compute-onnx/support/onnxruntime"

	"github.com/godiffusion/godiffusion/internal/atomicfile"
)

const (
	name = "install_onnxruntime"
	// envLibrary is the variable through which package backend and compute-onnx take the library
	// from elsewhere; while it is set, they do not look in the install folder.
	envLibrary = "ONNXRUNTIME_SHARED_LIBRARY_PATH"
	npmPackage = "onnxruntime-node"
	// defaultNPMVersion is the onnxruntime-node version (= its ONNX Runtime version) known to work
	// with the compute-onnx version in go.mod.
	defaultNPMVersion = "1.29.0"
)

// sources are the values of --from.
var sources = []string{"auto", "gomlx", "npm"}

var (
	gomlxVersionRE = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+){0,2}$`)
	npmVersionRE   = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
)

type options struct {
	dir, from, version, npmVersion string
	timeout                        time.Duration
	force                          bool
	dirSet                         bool // --dir was given: $ONNXRUNTIME_SHARED_LIBRARY_PATH is not consulted.
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	defaultDir, _ := onnxruntime.GetInstallPath() // "" on platforms GoMLX does not know: --dir is then required.
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./scripts/%s [flags]\n\n%s\n\nFlags:\n", name,
			"Installs the ONNX Runtime library (CPU) with GoMLX's installer, else from the npm package "+npmPackage+".")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.dir, "dir", defaultDir, "folder to install into (the default is where package backend and GoMLX look; "+
		"for another, set "+envLibrary+" to the library in it)")
	fs.StringVar(&o.from, "from", "auto", "source: auto (GoMLX's installer, else npm), gomlx (GitHub releases only) or npm (the npm package only)")
	fs.StringVar(&o.version, "version", onnxruntime.DefaultVersion, "ONNX Runtime version for GoMLX's installer (e.g. 1.29.0); empty: the latest release")
	fs.StringVar(&o.npmVersion, "npm-version", defaultNPMVersion, "version of the npm package "+npmPackage+" (the ONNX Runtime version it holds)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "how long GoMLX's installer may take before the npm package is used instead")
	fs.BoolVar(&o.force, "force", false, "install even if the library is already there")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (all options are flags, see --help)", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { o.dirSet = o.dirSet || f.Name == "dir" })
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.dir != "", "--dir must name a folder (GoMLX has no default install folder on %s/%s)", runtime.GOOS, runtime.GOARCH)
	check(slices.Contains(sources, o.from), "--from=%q: use one of %s", o.from, strings.Join(sources, ", "))
	check(o.version == "" || gomlxVersionRE.MatchString(o.version), "--version=%q: use a release number such as 1.29.0, or empty for the latest", o.version)
	check(npmVersionRE.MatchString(o.npmVersion), "--npm-version=%q: use an exact version such as %s", o.npmVersion, defaultNPMVersion)
	check(o.timeout > 0, "--timeout=%v: must be > 0 (use --from npm to skip GoMLX's installer)", o.timeout)
	return o, errors.Join(errs...)
}

func run(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	libName, err := onnxruntime.GetLibFilename()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(expandTilde(o.dir))
	if err != nil {
		return err
	}
	target := filepath.Join(dir, libName)
	env := os.Getenv(envLibrary)
	if !o.force && !o.dirSet && env != "" && installedAt(env) {
		fmt.Fprintf(stdout, "onnxruntime: already installed at %s ($%s)\n", env, envLibrary)
		return nil
	}
	if !o.force && installedAt(target) {
		fmt.Fprintf(stdout, "onnxruntime: already installed at %s\n", target)
		return nil
	}
	defer func() { // The library is not where the backend looks while the variable names another file.
		if err == nil && env != "" && !sameFile(env, target) {
			fmt.Fprintf(stderr, "onnxruntime: note: $%s=%q takes precedence over %s: set it to %s, or unset it\n",
				envLibrary, env, dir, target)
		}
	}()

	var gomlxErr error
	if o.from != "npm" {
		fmt.Fprintf(stdout, "onnxruntime: trying GoMLX's installer (GitHub releases, at most %v)\n", o.timeout)
		version, cleanup, err := installWithGoMLX(ctx, o.version, dir, libName, o.timeout)
		defer cleanup()
		if err == nil {
			fmt.Fprintf(stdout, "onnxruntime: installed ONNX Runtime %s from GitHub (GoMLX's installer) at %s\n", version, target)
			return nil
		}
		if o.from == "gomlx" || ctx.Err() != nil {
			return fmt.Errorf("GoMLX's installer: %w", err)
		}
		gomlxErr = err
		fmt.Fprintf(stdout, "onnxruntime: GoMLX's installer could not download (%s); using the npm package %s@%s\n",
			shortReason(err), npmPackage, o.npmVersion)
	}
	if err := installFromNPM(ctx, o.npmVersion, target, stdout, stderr); err != nil {
		if gomlxErr != nil {
			return fmt.Errorf("%w\n(and GoMLX's installer could not download: %s)", err, shortReason(gomlxErr))
		}
		return err
	}
	why := ""
	if gomlxErr != nil {
		why = fmt.Sprintf(" (GoMLX's installer could not download: %s)", shortReason(gomlxErr))
	}
	fmt.Fprintf(stdout, "onnxruntime: installed ONNX Runtime %s from the npm package %s@%s at %s%s\n",
		o.npmVersion, npmPackage, o.npmVersion, target, why)
	return nil
}

// installWithGoMLX runs GoMLX's installer for at most timeout and moves what it installed into dir.
// The installer cannot be cancelled, so it installs into a fresh hidden folder inside dir: if it is
// abandoned it cannot overwrite what the npm fallback installs meanwhile. cleanup removes that
// folder; the caller defers it (an abandoned installer may still be writing there until the
// command exits).
func installWithGoMLX(ctx context.Context, version, dir, libName string, timeout time.Duration) (installed string, cleanup func(), err error) {
	cleanup = func() {}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", cleanup, err
	}
	staging, err := os.MkdirTemp(dir, ".gomlx-install-")
	if err != nil {
		return "", cleanup, err
	}
	cleanup = func() { _ = os.RemoveAll(staging) }
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		_, err := onnxruntime.Install(version, false, "", staging, true)
		done <- err
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err = <-done:
	case <-timer.C:
		err = fmt.Errorf("no result within --timeout=%v, gave up", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return "", cleanup, err
	}
	if !installedAt(filepath.Join(staging, libName)) {
		return "", cleanup, fmt.Errorf("it installed no %s", libName)
	}
	installed, _ = onnxruntime.GetInstalledVersion(staging) // From the VERSION file it writes.
	if installed == "" {
		installed = strings.TrimPrefix(version, "v")
	}
	if err := moveInto(staging, dir, libName); err != nil {
		return "", cleanup, err
	}
	return installed, cleanup, nil
}

// moveInto renames the files and symbolic links of src into dst, replacing those already there:
// regular files first, then links, and libName last, so that no link points at a missing file.
func moveInto(src, dst, libName string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	rank := func(e os.DirEntry) int {
		switch {
		case e.Name() == libName:
			return 2
		case e.Type()&os.ModeSymlink != 0:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(entries, func(a, b os.DirEntry) int { return rank(a) - rank(b) })
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// installFromNPM fetches the npm package onnxruntime-node@version with `npm pack` into a temporary
// folder (with its own npm cache, so that the 112 MB are not kept) and writes its library for this
// platform to target, atomically, with a VERSION file beside it as GoMLX's installer writes.
func installFromNPM(ctx context.Context, version, target string, stdout, stderr io.Writer) error {
	member, err := npmMember(runtime.GOOS, runtime.GOARCH)
	if err != nil {
		return err
	}
	spec := npmPackage + "@" + version
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is not installed, and it is needed to fetch the npm package %s: install Node.js "+
			"with npm (Debian/Ubuntu: sudo apt-get install nodejs npm; else https://nodejs.org), or install "+
			"the library by hand at %s, or point $%s at one", spec, target, envLibrary)
	}
	tmp, err := os.MkdirTemp("", "onnxruntime-npm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(stdout, "onnxruntime: fetching %s with npm pack (about 110 MB)\n", spec)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, npm, "pack", spec, "--silent", "--ignore-scripts",
		"--cache", filepath.Join(tmp, "npm-cache"))
	cmd.Dir = tmp
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm pack %s: %w\n%s", spec, err, strings.TrimSpace(lastLines(out.String(), 10)))
	}
	tgzs, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(tgzs) != 1 {
		return fmt.Errorf("npm pack %s wrote %d .tgz files into %s, want 1 (its output: %q)", spec, len(tgzs), tmp, strings.TrimSpace(out.String()))
	}
	f, err := os.Open(tgzs[0])
	if err != nil {
		return err
	}
	defer f.Close()
	if err := atomicfile.Write(target, func(w io.Writer) error { return extractMember(f, member, w) }); err != nil {
		return fmt.Errorf("%s: %w", spec, err)
	}
	versionFile := filepath.Join(filepath.Dir(target), "VERSION")
	if err := atomicfile.Write(versionFile, func(w io.Writer) error { _, err := fmt.Fprintln(w, version); return err }); err != nil {
		fmt.Fprintf(stderr, "onnxruntime: warning: could not write %s: %v\n", versionFile, err)
	}
	return nil
}

// npmMember returns the path, inside the npm package onnxruntime-node, of the ONNX Runtime library
// for goos/goarch; the package holds Linux ones for x64 and arm64 (its macOS and Windows libraries
// are not named as GoMLX expects them).
func npmMember(goos, goarch string) (string, error) {
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[goarch]
	if goos != "linux" || arch == "" {
		return "", fmt.Errorf("the npm fallback has a library for linux/amd64 and linux/arm64 only, not %s/%s: "+
			"run this command where github.com can be reached (GoMLX's installer), or point $%s at a library obtained by hand",
			goos, goarch, envLibrary)
	}
	return "package/bin/napi-v6/linux/" + arch + "/libonnxruntime.so.1", nil
}

// extractMember copies the regular file member of the gzipped tar archive r to w. It fails if the
// archive has no such file.
func extractMember(r io.Reader, member string, w io.Writer) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading the package: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("the package has no %s", member)
		}
		if err != nil {
			return fmt.Errorf("reading the package: %w", err)
		}
		if strings.TrimPrefix(path.Clean(h.Name), "./") != member {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("%s in the package is not a regular file", member)
		}
		n, err := io.Copy(w, tr)
		if err != nil {
			return fmt.Errorf("extracting %s: %w", member, err)
		}
		if n == 0 {
			return fmt.Errorf("%s in the package is empty", member)
		}
		return nil
	}
}

// installedAt reports whether p is a non-empty file (following links).
func installedAt(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular() && info.Size() > 0
}

func sameFile(a, b string) bool {
	ia, errA := os.Stat(a)
	ib, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(ia, ib)
}

func expandTilde(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, p[1:])
}

// shortReason is the innermost cause of err (e.g. "lookup github.com: no such host" rather than the
// request that failed) on one line, cut to about 200 characters.
func shortReason(err error) string {
	for inner := errors.Unwrap(err); inner != nil && inner.Error() != ""; inner = errors.Unwrap(inner) {
		err = inner
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:200]) + "..."
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := 0
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		code = 1
		if ctx.Err() != nil { // Ctrl-C or SIGTERM.
			code = 130
		}
	}
	stop()
	os.Exit(code)
}
