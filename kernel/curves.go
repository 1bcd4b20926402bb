package kernel

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// curveColors are the series colors of CurvesSVG, in order.
var curveColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// CurvesSVG draws several series ys[i] over x = 0..len-1 in one SVG plot of width x height pixels
// with a legend of names (e.g. ᾱ_t of several noise schedules). The y axis spans the values'
// range, widened to include [0, 1] when they lie within it; non-finite values break a line.
func CurvesSVG(title string, names []string, ys [][]float64, width, height int) string {
	const left, right, top, bottom = 50.0, 140.0, 30.0, 35.0
	w, h := float64(width)-left-right, float64(height)-top-bottom
	n, lo, hi := 0, math.Inf(1), math.Inf(-1)
	for _, curve := range ys {
		n = max(n, len(curve))
		for _, v := range curve {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo >= 0 && hi <= 1 || lo > hi {
		lo, hi = 0, 1
	} else if lo == hi {
		lo, hi = lo-1, hi+1
	}
	xOf := func(t int) float64 { return left + w*float64(t)/float64(max(n-1, 1)) }
	yOf := func(v float64) float64 { return top + h*(hi-v)/(hi-lo) }
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, width, height)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%g" y="18" font-weight="bold">%s</text>`, left, html.EscapeString(title))
	fmt.Fprintf(&sb, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="black"/>`, left, top, w, h)
	for i := range 5 {
		v := lo + (hi-lo)*float64(i)/4
		fmt.Fprintf(&sb, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" text-anchor="end">%.3g</text>`,
			left, left+w, yOf(v), yOf(v), left-5, yOf(v)+4, v)
	}
	for i := range 5 {
		t := i * max(n-1, 0) / 4
		fmt.Fprintf(&sb, `<text x="%.1f" y="%g" text-anchor="middle">%d</text>`, xOf(t), top+h+16, t)
	}
	for i, curve := range ys {
		c := curveColors[i%len(curveColors)]
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, c, strings.Join(pts, " "))
			}
			pts = pts[:0]
		}
		for t, v := range curve {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				flush()
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(t), yOf(v)))
		}
		flush()
		name := ""
		if i < len(names) {
			name = names[i]
		}
		fmt.Fprintf(&sb, `<line x1="%g" x2="%g" y1="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%g" y="%d">%s</text>`,
			left+w+10, left+w+30, 40+20*i, 40+20*i, c, left+w+35, 44+20*i, html.EscapeString(name))
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}
