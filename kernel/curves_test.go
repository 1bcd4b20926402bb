package kernel

import (
	"encoding/xml"
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestCurvesSVG checks that every series becomes a polyline whose vertices map x = 0..n-1 and the
// y range onto the plot box, with its legend entry, and that the SVG parses.
func TestCurvesSVG(t *testing.T) {
	ys := [][]float64{{0, 0.5, 1}, {1, math.NaN(), 0.25}}
	svg := CurvesSVG("a <title>", []string{"first", "second & more"}, ys, 400, 200)
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not well-formed XML: %v", err)
	}
	for _, want := range []string{"a &lt;title&gt;", ">first<", ">second &amp; more<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	// The plot box: x from 50 to 400-140, y from 30 to 200-35; values in [0, 1] span it.
	var lines [][][2]float64
	for _, part := range strings.Split(svg, `points="`)[1:] {
		var pts [][2]float64
		for _, p := range strings.Fields(part[:strings.Index(part, `"`)]) {
			xy := strings.Split(p, ",")
			x, _ := strconv.ParseFloat(xy[0], 64)
			y, _ := strconv.ParseFloat(xy[1], 64)
			pts = append(pts, [2]float64{x, y})
		}
		lines = append(lines, pts)
	}
	want := [][][2]float64{
		{{50, 165}, {155, 97.5}, {260, 30}},
		{{50, 30}}, {{260, 131.25}}, // The NaN breaks the second series.
	}
	if len(lines) != len(want) {
		t.Fatalf("%d polylines, want %d: %v", len(lines), len(want), lines)
	}
	for i := range want {
		for j := range want[i] {
			if j >= len(lines[i]) || math.Abs(lines[i][j][0]-want[i][j][0]) > 0.06 || math.Abs(lines[i][j][1]-want[i][j][1]) > 0.06 {
				t.Errorf("polyline %d: %v, want %v", i, lines[i], want[i])
				break
			}
		}
	}
}

func TestConcat(t *testing.T) {
	a := Batch{N: 1, H: 1, W: 2, Data: []float32{1, 2}}
	b := Batch{N: 2, H: 1, W: 2, Data: []float32{3, 4, 5, 6}}
	got, err := Concat(a, b)
	if err != nil || got.N != 3 || got.H != 1 || got.W != 2 || len(got.Data) != 6 || got.Data[0] != 1 || got.Data[5] != 6 {
		t.Errorf("Concat = %+v, %v", got, err)
	}
	if _, err := Concat(a, Batch{N: 1, H: 2, W: 1, Data: []float32{1, 2}}); err == nil || !strings.Contains(err.Error(), "batch 1 holds 2x1") {
		t.Errorf("Concat of mixed sizes: %v", err)
	}
	if _, err := Concat(); err == nil {
		t.Error("Concat() accepted")
	}
}
