package experiment

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lockHelperEnv, when set to a folder, makes the test binary act as the child process of
// TestLockRunAcrossProcesses instead of running tests (see TestMain).
const lockHelperEnv = "GODIFFUSION_TEST_LOCK_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHelperEnv); dir != "" {
		os.Exit(lockHelper(dir))
	}
	os.Exit(m.Run())
}

// lockHelper takes the lock of dir, says "locked" on stdout and holds the lock until its stdin
// closes (the parent closes it, or dies) or it is killed.
func lockHelper(dir string) int {
	l, err := LockRun(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := l.Unlock(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// checkLocked checks that err is a LockedError naming the process pid.
func checkLocked(t *testing.T, err error, dir string, pid int) {
	t.Helper()
	var locked *LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("second LockRun: %v, want a *LockedError", err)
	}
	if locked.Dir != dir || locked.Holder == nil || locked.Holder.PID != pid {
		t.Fatalf("LockedError %+v (holder %+v), want dir %s and pid %d", locked, locked.Holder, dir, pid)
	}
	if age := time.Since(locked.Holder.Started); age < -time.Second || age > time.Minute {
		t.Errorf("holder started %v, %v ago: want just now", locked.Holder.Started, age)
	}
	msg := err.Error()
	for _, want := range []string{dir, "process " + strconv.Itoa(pid) + " ", "started ", "wait for it to finish", "another run folder"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

// TestLockRunInProcess: a second lock of a run folder fails naming the holder (this process), and
// succeeds once the first is released.
func TestLockRunInProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run") // LockRun creates it.
	first, err := LockRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockRun(dir)
	checkLocked(t, err, dir, os.Getpid())
	t.Logf("the error: %v", err)
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := first.Unlock(); err != nil {
		t.Errorf("second Unlock: %v", err)
	}
	second, err := LockRun(dir)
	if err != nil {
		t.Fatalf("LockRun after Unlock: %v", err)
	}
	if err := second.Unlock(); err != nil {
		t.Fatal(err)
	}
	// Checkpoints are listed and resolved as before: the lock file is not one of them.
	if cks, err := ListCheckpoints(dir); err != nil || len(cks) != 0 {
		t.Errorf("ListCheckpoints of a locked, empty run: %v, %v", cks, err)
	}
}

// TestLockRunAcrossProcesses runs this test binary again as a child process that takes the lock:
// the parent's LockRun fails naming the child's pid; once the child is killed with SIGKILL (no
// chance to clean up), the lock can be taken at once: a crash leaves no stale lock.
func TestLockRunAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // Open until the test ends: the child holds the lock until killed.
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "locked" {
			t.Fatalf("child process said %q, want \"locked\"", line)
		}
	case <-time.After(time.Minute):
		t.Fatal("the child process did not take the lock within a minute")
	}

	_, err = LockRun(dir)
	checkLocked(t, err, dir, cmd.Process.Pid)
	t.Logf("the error: %v", err)

	if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix.
		t.Fatal(err)
	}
	killed = true
	if err := cmd.Wait(); err == nil {
		t.Fatal("the killed child process exited normally")
	}
	// The killed holder's details stay in the file, but the lock is gone with the process.
	if data, err := os.ReadFile(filepath.Join(dir, LockFile)); err != nil || !strings.Contains(string(data), strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("lock file after the kill: %q, %v; want the child's details left in it", data, err)
	}
	l, err := LockRun(dir)
	if err != nil {
		t.Fatalf("LockRun after the holder was killed: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
}
