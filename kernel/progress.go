package kernel

import (
	"fmt"
	"html"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/janpfeifer/gonb/gonbui"
)

// Field is a named value shown after the progress bar, e.g. the current loss.
type Field struct {
	Name  string
	Value any
}

// F is shorthand for Field{name, value}: p.Update(step, kernel.F("loss", l)).
// Floats are shown with 4 significant digits, other values with %v.
func F(name string, value any) Field { return Field{Name: name, Value: value} }

// ProgressMode selects how a [Progress] draws itself.
type ProgressMode int

const (
	// ProgressAuto picks ProgressHTML inside GoNB, ProgressTerminal when the
	// output is a terminal (and TERM is not "dumb"), ProgressLog otherwise.
	ProgressAuto ProgressMode = iota
	// ProgressTerminal redraws one line in place with a carriage return.
	ProgressTerminal
	// ProgressLog prints a plain line every log interval (for logs and CI).
	ProgressLog
	// ProgressHTML shows an HTML progress bar in the GoNB cell output,
	// updated in place.
	ProgressHTML
)

// String returns the mode's name.
func (m ProgressMode) String() string {
	switch m {
	case ProgressAuto:
		return "auto"
	case ProgressTerminal:
		return "terminal"
	case ProgressLog:
		return "log"
	case ProgressHTML:
		return "html"
	}
	return "ProgressMode(" + strconv.Itoa(int(m)) + ")"
}

// Default redraw intervals of a [Progress].
const (
	DefaultTerminalInterval = 200 * time.Millisecond
	DefaultHTMLInterval     = 500 * time.Millisecond
	DefaultLogInterval      = 10 * time.Second
)

// Progress reports the progress of a long loop (training steps, sampling
// steps). It shows step/total, percentage, speed in iterations per second
// (seconds per iteration when slower than 1 it/s) and, with [Progress.WithItems],
// in items per second (e.g. images/s), the elapsed time, the estimated time
// left (ETA) and the caller's fields.
//
// Speeds are measured from the first Update, so one-off costs before it
// (such as JIT compilation of the first step) do not distort the ETA; until a
// second Update arrives they are measured from NewProgress.
//
// In a terminal it redraws one line on stderr at most 5 times a second; when
// stderr is not a terminal it prints a plain line at most every 10 seconds;
// inside GoNB it shows an HTML progress bar updated in place whose final state
// stays in the notebook. Call Done at the end. A Progress is safe for
// concurrent use, and a nil *Progress does nothing.
type Progress struct {
	mu          sync.Mutex
	total       int
	label       string
	mode        ProgressMode
	w           io.Writer
	now         func() time.Time
	showHTML    func(id, html string)
	flush       func() bool // Called after the final HTML update.
	htmlID      string
	perStep     float64
	unit        string
	minInterval time.Duration
	logInterval time.Duration

	start          time.Time
	started        bool // An Update arrived.
	firstStep      int
	startStep      int // Steps already done at NewProgress (WithStart).
	firstTime      time.Time
	step           int
	fields         []Field
	drawn          bool
	lastDraw       time.Time
	done           bool
	customInterval bool
	deadline       time.Time // Zero: none (WithDeadline).
}

// NewProgress starts a progress report for total steps (total <= 0: unknown,
// no percentage or ETA) named label, drawn on stderr or, inside GoNB, in the
// cell output (mode [ProgressAuto]).
func NewProgress(total int, label string) *Progress {
	p := &Progress{
		total:       total,
		label:       label,
		now:         time.Now,
		showHTML:    gonbui.UpdateHTML,
		flush:       Flush,
		logInterval: DefaultLogInterval,
	}
	p.start = p.now()
	p.setOutput(os.Stderr, ProgressAuto)
	return p
}

func (p *Progress) setOutput(w io.Writer, mode ProgressMode) {
	if mode == ProgressAuto {
		mode = detectMode(w)
	}
	p.w, p.mode = w, mode
	if mode == ProgressHTML && p.htmlID == "" {
		p.htmlID = "kernel_progress_" + gonbui.UniqueId()
	}
	if !p.customInterval {
		p.minInterval = DefaultTerminalInterval
		if mode == ProgressHTML {
			p.minInterval = DefaultHTMLInterval
		}
	}
}

// detectMode implements ProgressAuto for the writer w.
func detectMode(w io.Writer) ProgressMode {
	if InGoNB() {
		return ProgressHTML
	}
	if f, ok := w.(*os.File); ok && os.Getenv("TERM") != "dumb" {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return ProgressTerminal
		}
	}
	return ProgressLog
}

// WithOutput makes p draw to w in the given mode (ProgressAuto detects it
// from w); in ProgressHTML mode w is not used. Call it before the first
// Update. It returns p.
func (p *Progress) WithOutput(w io.Writer, mode ProgressMode) *Progress {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setOutput(w, mode)
	return p
}

// WithClock replaces the time source (time.Now by default), e.g. by a fake
// clock in tests, and restarts the elapsed time from now(). Call it before
// the first Update. It returns p.
func (p *Progress) WithClock(now func() time.Time) *Progress {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.now = now
	p.start = now()
	return p
}

// WithStart says that step steps were already done before this Progress
// started (a resumed run), so the first speed estimate counts only the new ones.
// It returns p.
func (p *Progress) WithStart(step int) *Progress {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startStep = step
	return p
}

// WithDeadline says that the loop stops at deadline even if total is not reached (a time budget): the
// ETA is then the sooner of the two. A zero deadline means none. It returns p.
func (p *Progress) WithDeadline(deadline time.Time) *Progress {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deadline = deadline
	return p
}

// WithItems also reports a throughput in items per second, for perStep
// items processed per step (e.g. the batch size, unit "img"). It returns p.
func (p *Progress) WithItems(perStep int, unit string) *Progress {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.perStep, p.unit = float64(perStep), unit
	return p
}

// WithMinInterval sets the minimum time between redraws in terminal and
// HTML modes (defaults [DefaultTerminalInterval], [DefaultHTMLInterval]).
// It returns p.
func (p *Progress) WithMinInterval(d time.Duration) *Progress {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.minInterval, p.customInterval = d, true
	return p
}

// WithLogInterval sets the minimum time between lines in log mode (default
// [DefaultLogInterval]). It returns p.
func (p *Progress) WithLogInterval(d time.Duration) *Progress {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logInterval = d
	return p
}

// Mode returns the drawing mode in use.
func (p *Progress) Mode() ProgressMode {
	if p == nil {
		return ProgressAuto
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Update records that step steps are complete (counting from 1; step ==
// total at the end) with the given fields, and redraws if the throttle
// allows. The first Update and, in terminal and HTML modes, the one reaching
// total always draw. Updates after Done are ignored.
func (p *Progress) Update(step int, fields ...Field) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	now := p.now()
	if !p.started {
		p.started, p.firstStep, p.firstTime = true, step, now
	}
	p.step = step
	p.fields = append(p.fields[:0], fields...)
	interval := p.minInterval
	if p.mode == ProgressLog {
		interval = p.logInterval
	}
	final := p.total > 0 && step >= p.total && p.mode != ProgressLog
	if p.drawn && now.Sub(p.lastDraw) < interval && !final {
		return
	}
	p.drawLocked(now, false)
}

// Printf prints one line of log text (a newline is added) without breaking
// the bar: in a terminal it clears the bar, prints the line and redraws the
// bar below it; in log mode it prints the line; inside GoNB it prints to
// standard output, which the cell shows above the HTML bar.
func (p *Progress) Printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...) + "\n"
	if p == nil {
		_, _ = io.WriteString(os.Stdout, line)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case ProgressHTML:
		_, _ = io.WriteString(os.Stdout, line)
	case ProgressTerminal:
		_, _ = io.WriteString(p.w, "\r\x1b[K"+line)
		if p.drawn && !p.done {
			p.drawLocked(p.now(), false)
		}
	default:
		_, _ = io.WriteString(p.w, line)
	}
}

// Done draws the final state (in a terminal, followed by a newline; in GoNB
// the bar stays in the cell output, and Done waits for GoNB to receive it,
// see [Flush]) and stops p. Calling it again does nothing.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	p.drawLocked(p.now(), true)
	if p.mode == ProgressHTML && p.flush != nil {
		p.flush()
	}
}

// String returns the current status as one plain line, as log mode prints it.
func (p *Progress) String() string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lineLocked(p.statsLocked(p.now()), p.done, false)
}

// progressStats are the numbers shown at one instant.
type progressStats struct {
	elapsed time.Duration
	rate    float64 // Steps per second; 0 if unknown.
	eta     time.Duration
	hasETA  bool
}

func (p *Progress) statsLocked(now time.Time) progressStats {
	s := progressStats{elapsed: now.Sub(p.start)}
	switch {
	case p.started && p.step > p.firstStep && now.After(p.firstTime):
		s.rate = float64(p.step-p.firstStep) / now.Sub(p.firstTime).Seconds()
	case p.started && p.step > p.startStep && s.elapsed > 0:
		s.rate = float64(p.step-p.startStep) / s.elapsed.Seconds()
	}
	if p.total > 0 && s.rate > 0 {
		left := max(p.total-p.step, 0)
		s.eta = time.Duration(float64(left) / s.rate * float64(time.Second))
		s.hasETA = true
	}
	if !p.deadline.IsZero() {
		if left := max(p.deadline.Sub(now), 0); !s.hasETA || left < s.eta {
			s.eta, s.hasETA = left, true
		}
	}
	return s
}

func (p *Progress) drawLocked(now time.Time, final bool) {
	p.drawn, p.lastDraw = true, now
	s := p.statsLocked(now)
	switch p.mode {
	case ProgressHTML:
		if p.showHTML != nil {
			p.showHTML(p.htmlID, p.htmlLocked(s, final))
		}
	case ProgressTerminal:
		end := "\x1b[K"
		if final {
			end += "\n"
		}
		_, _ = io.WriteString(p.w, "\r"+p.lineLocked(s, final, true)+end)
	default:
		_, _ = io.WriteString(p.w, p.lineLocked(s, final, false)+"\n")
	}
}

// barWidth is the width of the terminal bar in characters.
const barWidth = 20

// partsLocked returns the pieces of a status line shared by all modes.
func (p *Progress) partsLocked(s progressStats, final bool) (count, timing string, speeds, fields []string) {
	if p.total > 0 {
		count = fmt.Sprintf("%d/%d", p.step, p.total)
	} else {
		count = fmt.Sprintf("%d steps", p.step)
	}
	switch {
	case final:
		timing = "done in " + formatDuration(s.elapsed)
	case s.hasETA:
		timing = "elapsed " + formatDuration(s.elapsed) + " eta " + formatDuration(s.eta)
	default:
		timing = "elapsed " + formatDuration(s.elapsed)
	}
	if s.rate > 0 {
		if s.rate >= 1 {
			speeds = append(speeds, strconv.FormatFloat(s.rate, 'f', 2, 64)+" it/s")
		} else {
			speeds = append(speeds, strconv.FormatFloat(1/s.rate, 'f', 2, 64)+" s/it")
		}
		if p.perStep > 0 {
			unit := p.unit
			if unit == "" {
				unit = "items"
			}
			speeds = append(speeds, strconv.FormatFloat(s.rate*p.perStep, 'f', 1, 64)+" "+unit+"/s")
		}
	}
	for _, f := range p.fields {
		fields = append(fields, f.Name+"="+formatValue(f.Value))
	}
	return count, timing, speeds, fields
}

// percentLocked returns the completed fraction in [0, 1], or -1 if total is unknown.
func (p *Progress) percentLocked() float64 {
	if p.total <= 0 {
		return -1
	}
	return min(max(float64(p.step)/float64(p.total), 0), 1)
}

// lineLocked formats a plain (log) or terminal (with bar) status line.
func (p *Progress) lineLocked(s progressStats, final, bar bool) string {
	count, timing, speeds, fields := p.partsLocked(s, final)
	var parts []string
	if p.label != "" {
		parts = append(parts, p.label)
	}
	if frac := p.percentLocked(); frac >= 0 {
		pct := fmt.Sprintf("%5.1f%%", 100*frac)
		if bar {
			n := int(frac * barWidth)
			b := strings.Repeat("=", n)
			if n < barWidth {
				b += ">" + strings.Repeat(" ", barWidth-n-1)
			}
			parts = append(parts, pct, "["+b+"]", count)
		} else {
			parts = append(parts, count, "("+strings.TrimSpace(pct)+")")
		}
	} else {
		parts = append(parts, count)
	}
	parts = append(parts, speeds...)
	parts = append(parts, timing)
	parts = append(parts, fields...)
	return strings.Join(parts, " ")
}

// htmlLocked formats the GoNB progress bar.
func (p *Progress) htmlLocked(s progressStats, final bool) string {
	count, timing, speeds, fields := p.partsLocked(s, final)
	var b strings.Builder
	b.WriteString(`<div style="font-family: monospace; font-size: 13px; line-height: 1.6">`)
	if p.label != "" {
		b.WriteString("<b>" + html.EscapeString(p.label) + "</b> ")
	}
	if frac := p.percentLocked(); frac >= 0 {
		fmt.Fprintf(&b, `<progress value="%d" max="%d" style="width: 240px; vertical-align: middle"></progress> %.1f%% `, min(max(p.step, 0), p.total), p.total, 100*frac)
	}
	items := append([]string{count}, speeds...)
	items = append(items, timing)
	items = append(items, fields...)
	for i, it := range items {
		if i > 0 {
			b.WriteString(" &middot; ")
		}
		b.WriteString(html.EscapeString(it))
	}
	b.WriteString("</div>")
	return b.String()
}

// formatDuration formats d as MM:SS, or H:MM:SS from one hour on, dropping
// fractions of a second like a clock.
func formatDuration(d time.Duration) string {
	sec := int64(d / time.Second)
	if sec < 0 {
		sec = 0
	}
	h, m, s := sec/3600, sec/60%60, sec%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%02d:%02d", m, s)
}

// formatValue formats a field value: floats with 4 significant digits.
func formatValue(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', 4, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', 4, 32)
	default:
		return fmt.Sprint(v)
	}
}
