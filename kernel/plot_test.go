package kernel

import (
	"encoding/xml"
	"errors"
	"image/color"
	"io"
	"math"
	"strings"
	"testing"
)

// svgInfo is what checkSVG finds in an SVG document.
type svgInfo struct {
	root      string
	polylines []int // Number of points of each polyline.
	texts     []string
}

// checkSVG parses svg strictly as XML and collects its polylines and texts.
func checkSVG(t *testing.T, svg string) svgInfo {
	t.Helper()
	var info svgInfo
	dec := xml.NewDecoder(strings.NewReader(svg))
	dec.Strict = true
	inText := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if info.root == "" {
				info.root = e.Name.Local
				if e.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", e.Name.Space)
				}
			}
			inText = e.Name.Local == "text"
			if e.Name.Local == "polyline" {
				for _, a := range e.Attr {
					if a.Name.Local == "points" {
						info.polylines = append(info.polylines, len(strings.Fields(a.Value)))
					}
				}
			}
		case xml.CharData:
			if inText {
				info.texts = append(info.texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if info.root != "svg" {
		t.Errorf("root element %q, want svg", info.root)
	}
	return info
}

func ramp(n int) ([]int, []float64) {
	steps := make([]int, n)
	losses := make([]float64, n)
	for i := range steps {
		steps[i] = (i + 1) * 10
		losses[i] = 1/float64(i+1) + 0.01*float64(i%3)
	}
	return steps, losses
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func TestLossCurveSVG(t *testing.T) {
	steps, losses := ramp(50)
	info := checkSVG(t, LossCurveSVG(steps, losses, `Loss <DDPM> & "friends"`, PlotOptions{}))
	if len(info.polylines) != 1 || info.polylines[0] != 50 {
		t.Errorf("polylines %v, want one of 50 points", info.polylines)
	}
	if !contains(info.texts, `Loss <DDPM> & "friends"`) || !contains(info.texts, "step") || !contains(info.texts, "loss") {
		t.Errorf("title or axis labels missing from %q", info.texts)
	}

	// Smoothing: raw and smoothed curves, both of 50 points, and a legend.
	info = checkSVG(t, LossCurveSVG(steps, losses, "", PlotOptions{SmoothEMA: 0.9, LogY: true}))
	if len(info.polylines) != 2 || info.polylines[0] != 50 || info.polylines[1] != 50 {
		t.Errorf("polylines %v, want two of 50 points", info.polylines)
	}
	if !contains(info.texts, "EMA 0.9") {
		t.Errorf("legend missing from %q", info.texts)
	}
	// Losses from ~1 down to ~0.02 on a log axis: decade ticks.
	for _, want := range []string{"0.1", "1"} {
		if !contains(info.texts, want) {
			t.Errorf("log tick %q missing from %q", want, info.texts)
		}
	}
	info = checkSVG(t, LossCurveSVG(steps, losses, "", PlotOptions{SmoothWindow: 5, HideRaw: true}))
	if len(info.polylines) != 1 || info.polylines[0] != 50 || !contains(info.texts, "moving average (5)") {
		t.Errorf("HideRaw: polylines %v, texts %q", info.polylines, info.texts)
	}

	// A NaN and, on a log axis, a non-positive loss break the line; extra steps are ignored.
	losses[10], losses[20] = math.NaN(), 0
	info = checkSVG(t, LossCurveSVG(append(steps, 9999), losses, "", PlotOptions{LogY: true}))
	if got := info.polylines; len(got) != 3 || got[0] != 10 || got[1] != 9 || got[2] != 29 {
		t.Errorf("broken line polylines %v, want [10 9 29]", got)
	}

	// Long curves are decimated: 5000 points at stride 3, plus the last.
	steps, losses = ramp(5000)
	info = checkSVG(t, LossCurveSVG(steps, losses, "", PlotOptions{}))
	if len(info.polylines) != 1 || info.polylines[0] != 1668 {
		t.Errorf("decimated polylines %v, want [1668]", info.polylines)
	}
	info = checkSVG(t, LossCurveSVG(steps, losses, "", PlotOptions{MaxPoints: -1}))
	if len(info.polylines) != 1 || info.polylines[0] != 5000 {
		t.Errorf("undecimated polylines %v, want [5000]", info.polylines)
	}
	// Linear ticks of x: 10..50000 gives round numbers like "10k".
	if !contains(info.texts, "10k") {
		t.Errorf("x tick 10k missing from %q", info.texts)
	}

	// Degenerate inputs stay well-formed.
	info = checkSVG(t, LossCurveSVG(nil, nil, "empty", PlotOptions{}))
	if len(info.polylines) != 0 || !contains(info.texts, "no data") {
		t.Errorf("empty plot: polylines %v texts %q", info.polylines, info.texts)
	}
	checkSVG(t, LossCurveSVG([]int{1}, []float64{0.5}, "one point", PlotOptions{LogY: true}))
	checkSVG(t, LossCurveSVG([]int{1, 2, 3}, []float64{2, 2, 2}, "flat", PlotOptions{}))
	checkSVG(t, LossCurveSVG([]int{1, 2}, []float64{0.051, 0.052}, "narrow log", PlotOptions{LogY: true}))
}

func TestLogTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range logTicks(lo, hi) {
			out = append(out, tk.label)
		}
		return out
	}
	if got := strings.Join(labels(0.005, 2), " "); got != "0.01 0.1 1" {
		t.Errorf("decades: %s", got)
	}
	if got := strings.Join(labels(0.03, 0.3), " "); got != "0.05 0.1 0.2" {
		t.Errorf("1-2-5: %s", got)
	}
	if got := labels(0.051, 0.058); len(got) < 2 {
		t.Errorf("narrow range: %v", got)
	}
}

func TestSmoothing(t *testing.T) {
	near := func(a, b []float64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if math.IsNaN(a[i]) != math.IsNaN(b[i]) || (!math.IsNaN(a[i]) && math.Abs(a[i]-b[i]) > 1e-12) {
				return false
			}
		}
		return true
	}
	nan := math.NaN()
	if got := MovingAverage([]float64{1, 2, 3, 4}, 2); !near(got, []float64{1, 1.5, 2.5, 3.5}) {
		t.Errorf("MovingAverage = %v", got)
	}
	if got := MovingAverage([]float64{nan, 2, nan, 4, 6}, 2); !near(got, []float64{nan, 2, 2, 4, 5}) {
		t.Errorf("MovingAverage with NaN = %v", got)
	}
	if got := EMA([]float64{2, 2, 2}, 0.5); !near(got, []float64{2, 2, 2}) {
		t.Errorf("EMA of a constant = %v (debiasing)", got)
	}
	if got := EMA([]float64{nan, 1, 3, nan}, 0.5); !near(got, []float64{nan, 1, 1.75 / 0.75, 1.75 / 0.75}) {
		t.Errorf("EMA = %v", got)
	}
}

func TestLossCurvePNG(t *testing.T) {
	steps, losses := ramp(100)
	img := LossCurvePNG(steps, losses, PlotOptions{Width: 320, Height: 200, SmoothEMA: 0.8})
	if r := img.Bounds(); r.Dx() != 320 || r.Dy() != 200 {
		t.Fatalf("size %v", r)
	}
	if c := img.RGBAAt(2, 2); c != (color.RGBA{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("background %v, want white", c)
	}
	if c := img.RGBAAt(70, 100); c != (color.RGBA{0, 0, 0, 0xff}) {
		t.Errorf("left axis %v, want black", c)
	}
	curve := 0
	for y := 0; y < 200; y++ {
		for x := 0; x < 320; x++ {
			if img.RGBAAt(x, y) == (color.RGBA{0x1f, 0x77, 0xb4, 0xff}) {
				curve++
			}
		}
	}
	if curve < 200 {
		t.Errorf("only %d curve pixels", curve)
	}
	LossCurvePNG(nil, nil, PlotOptions{}) // Must not panic.
}
