package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// LockFile is the file of a run folder that its writer (one training process) holds an OS lock on.
// The lock, not the file, says that the run is in use: the operating system drops it when the
// process ends in any way (a crash or kill -9 included), so it is never stale; the file stays and
// holds the details of the last process that took the lock.
const LockFile = ".lock"

// LockHolder describes the process that holds a run folder's lock, as it wrote it into LockFile.
type LockHolder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host,omitempty"`
	Started time.Time `json:"started"`
	// Command is the holder's command line.
	Command string `json:"command,omitempty"`
}

// String describes the holder for an error message, e.g.
// "process 1234 on host box, started 2025-01-02 15:04:05 +0100 (3m12s ago): train --out runs/train".
func (h *LockHolder) String() string {
	if h == nil {
		return "another process (it has not recorded its pid yet)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "process %d", h.PID)
	if h.Host != "" {
		fmt.Fprintf(&b, " on host %s", h.Host)
	}
	if !h.Started.IsZero() {
		fmt.Fprintf(&b, ", started %s (%s ago)", h.Started.Format("2006-01-02 15:04:05 -0700"),
			time.Since(h.Started).Round(time.Second))
	}
	if h.Command != "" {
		fmt.Fprintf(&b, ": %s", h.Command)
	}
	return b.String()
}

// LockedError is LockRun's error when another process holds the run folder.
type LockedError struct {
	// Dir is the run folder.
	Dir string
	// Holder is the process that holds it; nil when it has not written its details yet.
	Holder *LockHolder
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("run folder %s is in use by %s: wait for it to finish (or stop it), or use another run folder",
		e.Dir, e.Holder)
}

// RunLock is the lock of a run folder, held by the one process that writes it (see LockRun).
type RunLock struct {
	fl   *flock.Flock
	path string
}

// LockRun makes the calling process the only writer of the run folder runDir, which it creates if
// needed: it takes an exclusive OS lock on runDir/LockFile and records the process's pid, host,
// start time and command line in that file. If another process holds the lock, LockRun fails at
// once with a *LockedError naming it. Release the lock with Unlock when the run ends; the operating
// system releases it if the process dies first.
//
// Only writers lock: reading a run folder (sampling or evaluating a checkpoint) needs no lock, as
// checkpoints are written atomically.
func LockRun(runDir string) (*RunLock, error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(runDir, LockFile)
	fl := flock.New(path, flock.SetPermissions(0o644))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("locking run folder %s: %w", runDir, err)
	}
	if !ok {
		return nil, &LockedError{Dir: runDir, Holder: readHolder(path)}
	}
	holder := LockHolder{PID: os.Getpid(), Started: time.Now(), Command: commandLine()}
	holder.Host, _ = os.Hostname()
	data, err := json.Marshal(holder)
	if err == nil {
		// Best effort: the lock holds without the details (some systems forbid writing a locked
		// file through another handle), and LockedError then names no pid.
		_ = os.WriteFile(path, append(data, '\n'), 0o644)
	}
	return &RunLock{fl: fl, path: path}, nil
}

// Unlock releases the run folder. It is safe to call more than once.
func (l *RunLock) Unlock() error {
	if l == nil || l.fl == nil || !l.fl.Locked() {
		return nil
	}
	_ = os.Truncate(l.path, 0) // The details describe the holder only while it holds the lock.
	return l.fl.Unlock()
}

// readHolder reads the details the lock's holder wrote. The holder writes them just after taking
// the lock, so an empty or partly written file is read again for up to a second.
func readHolder(path string) *LockHolder {
	deadline := time.Now().Add(time.Second)
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			var h LockHolder
			if json.Unmarshal(data, &h) == nil && h.PID > 0 {
				return &h
			}
		}
		if errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// commandLine is the process's command line with the program's base name, e.g. "train --out runs/x".
func commandLine() string {
	if len(os.Args) == 0 {
		return ""
	}
	args := append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...)
	s := strings.Join(args, " ")
	const maxLen = 200
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return s
}
