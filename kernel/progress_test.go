package kernel

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock is a manually advanced time source.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock { return &fakeClock{time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func TestProgressLog(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	p := NewProgress(100, "train").WithClock(clock.Now).WithOutput(&buf, ProgressLog).WithItems(64, "img")
	if p.Mode() != ProgressLog {
		t.Fatalf("mode %v", p.Mode())
	}

	// The first step took 30 s (compilation): the rate is measured from the start.
	clock.Advance(30 * time.Second)
	p.Update(1, F("loss", 0.5))
	// Throttled: less than 10 s since the last line.
	clock.Advance(1 * time.Second)
	p.Update(3, F("loss", 0.4))
	// 10 s and 10 steps after the first Update: 1 it/s, 89 steps left.
	clock.Advance(9 * time.Second)
	p.Update(11, F("loss", float32(0.25)), F("lr", 1e-3), F("epoch", 2))
	clock.Advance(500 * time.Millisecond)
	p.Done()
	p.Done()     // No second final line.
	p.Update(50) // Ignored after Done.

	want := strings.Join([]string{
		"train 1/100 (1.0%) 30.00 s/it 2.1 img/s elapsed 00:30 eta 49:30 loss=0.5",
		"train 11/100 (11.0%) 1.00 it/s 64.0 img/s elapsed 00:40 eta 01:29 loss=0.25 lr=0.001 epoch=2",
		// 10 steps in 10.5 s since the first Update.
		"train 11/100 (11.0%) 1.05 s/it 61.0 img/s done in 00:40 loss=0.25 lr=0.001 epoch=2",
	}, "\n") + "\n"
	if got := buf.String(); got != want {
		t.Errorf("log output:\n%s\nwant:\n%s", got, want)
	}
}

func TestProgressETA(t *testing.T) {
	clock := newFakeClock()
	p := NewProgress(1000, "").WithClock(clock.Now).WithOutput(&bytes.Buffer{}, ProgressLog)
	clock.Advance(time.Minute)
	p.Update(100)
	clock.Advance(2 * time.Minute)
	p.Update(400) // 300 steps in 120 s: 2.5 it/s; 600 left: 240 s.
	s := p.statsLocked(clock.Now())
	if s.rate != 2.5 || !s.hasETA || s.eta != 240*time.Second || s.elapsed != 3*time.Minute {
		t.Errorf("stats %+v, want rate 2.5, eta 4m, elapsed 3m", s)
	}
	if got, want := p.String(), "400/1000 (40.0%) 2.50 it/s elapsed 03:00 eta 04:00"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	clock.Advance(2 * time.Hour)
	if got := p.String(); !strings.Contains(got, "elapsed 2:03:00") {
		t.Errorf("String() = %q, want elapsed 2:03:00", got)
	}
}

// TestProgressDeadline checks that a time budget shortens the ETA when it ends first, and only then.
func TestProgressDeadline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline time.Duration // From the start; 0: none.
		want     time.Duration
	}{
		{"no deadline", 0, 240 * time.Second},
		{"deadline first", 5 * time.Minute, 2 * time.Minute},
		{"steps first", 10 * time.Minute, 240 * time.Second},
		{"deadline passed", 2 * time.Minute, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p := NewProgress(1000, "").WithClock(clock.Now).WithOutput(&bytes.Buffer{}, ProgressLog)
			if tc.deadline > 0 {
				p.WithDeadline(clock.Now().Add(tc.deadline))
			}
			clock.Advance(time.Minute)
			p.Update(100)
			clock.Advance(2 * time.Minute)
			p.Update(400) // 2.5 it/s, 600 steps left: 240 s without a deadline.
			if s := p.statsLocked(clock.Now()); !s.hasETA || s.eta != tc.want {
				t.Errorf("eta %v (hasETA %v), want %v", s.eta, s.hasETA, tc.want)
			}
		})
	}
}

func TestProgressTerminal(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	p := NewProgress(10, "sample").WithClock(clock.Now).WithOutput(&buf, ProgressTerminal)
	clock.Advance(time.Second)
	p.Update(1) // Drawn: first.
	clock.Advance(100 * time.Millisecond)
	p.Update(2) // Throttled: 100 ms < 200 ms.
	clock.Advance(150 * time.Millisecond)
	p.Update(5) // Drawn.
	clock.Advance(10 * time.Millisecond)
	p.Update(10) // Drawn: reached total.
	p.Done()

	out := buf.String()
	lines := strings.Split(strings.TrimPrefix(out, "\r"), "\r")
	if len(lines) != 4 {
		t.Fatalf("%d redraws, want 4: %q", len(lines), out)
	}
	// 4 steps in 0.25 s since the first Update: 16 it/s; 5 left: 0.3125 s.
	if want := " 50.0% [==========>         ] 5/10 16.00 it/s elapsed 00:01 eta 00:00\x1b[K"; lines[1] != "sample "+want {
		t.Errorf("line %q, want %q", lines[1], "sample "+want)
	}
	if !strings.HasPrefix(lines[3], "sample 100.0% [====================] 10/10 ") || !strings.HasSuffix(out, "done in 00:01\x1b[K\n") {
		t.Errorf("final line %q", lines[3])
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("terminal output has %d newlines, want 1", strings.Count(out, "\n"))
	}
}

func TestProgressHTML(t *testing.T) {
	type call struct{ id, html string }
	var calls []call
	clock := newFakeClock()
	p := NewProgress(4, "<train>").WithClock(clock.Now).WithOutput(nil, ProgressHTML)
	p.showHTML = func(id, html string) { calls = append(calls, call{id, html}) }
	for i := 1; i <= 4; i++ {
		clock.Advance(time.Second)
		p.Update(i, F("loss", 1/float64(i)))
	}
	p.Done()
	if len(calls) != 5 {
		t.Fatalf("%d HTML updates, want 5 (throttle 500 ms, 1 s apart, plus Done)", len(calls))
	}
	for _, c := range calls {
		if c.id != calls[0].id || !strings.HasPrefix(c.id, "kernel_progress_") {
			t.Fatalf("display ids %q and %q", calls[0].id, c.id)
		}
	}
	first, last := calls[0].html, calls[4].html
	for _, want := range []string{"<b>&lt;train&gt;</b>", `<progress value="1" max="4"`, "25.0%", "1/4", "loss=1"} {
		if !strings.Contains(first, want) {
			t.Errorf("first HTML lacks %q: %s", want, first)
		}
	}
	for _, want := range []string{`<progress value="4" max="4"`, "100.0%", "done in 00:04", "1.00 it/s", "loss=0.25"} {
		if !strings.Contains(last, want) {
			t.Errorf("final HTML lacks %q: %s", want, last)
		}
	}
}

func TestProgressUnknownTotalAndNil(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	p := NewProgress(0, "gen").WithClock(clock.Now).WithOutput(&buf, ProgressLog)
	clock.Advance(2 * time.Second)
	p.Update(5)
	if got, want := buf.String(), "gen 5 steps 2.50 it/s elapsed 00:02\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var np *Progress
	np.WithItems(1, "x").WithClock(clock.Now).Update(3)
	np.Done()
	if np.String() != "" {
		t.Error("nil Progress String not empty")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                               "00:00",
		1499 * time.Millisecond:         "00:01",
		59*time.Minute + 59*time.Second: "59:59",
		3661 * time.Second:              "1:01:01",
		-time.Second:                    "00:00",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestProgressPrintf(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var buf bytes.Buffer
	p := NewProgress(10, "train").WithOutput(&buf, ProgressTerminal).WithClock(clock.Now)
	p.Update(1)
	p.Printf("Loss at step %d: %.3f", 0, 0.5)
	out := buf.String()
	i := strings.Index(out, "\r\x1b[KLoss at step 0: 0.500\n")
	if i < 0 {
		t.Fatalf("terminal output %q lacks the cleared log line", out)
	}
	if !strings.Contains(out[i:], "\rtrain") {
		t.Errorf("bar not redrawn after the log line: %q", out[i:])
	}
	buf.Reset()
	q := NewProgress(10, "train").WithOutput(&buf, ProgressLog).WithClock(clock.Now)
	q.Printf("epoch %d", 3)
	if buf.String() != "epoch 3\n" {
		t.Errorf("log mode printed %q, want %q", buf.String(), "epoch 3\n")
	}
}

// TestProgressWithStart: a resumed run's first speed counts only the steps done since the start.
func TestProgressWithStart(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var buf bytes.Buffer
	p := NewProgress(200, "train").WithOutput(&buf, ProgressLog).WithClock(clock.Now).WithStart(100)
	clock.Advance(4 * time.Second)
	p.Update(101)
	if !strings.Contains(buf.String(), "4.00 s/it") {
		t.Errorf("first line %q: want 4.00 s/it (one step in 4 s), not 101 steps in 4 s", buf.String())
	}
}
