package kernel

import (
	"fmt"
	"html"
	"image"
	"image/color"
	"math"
	"strconv"
	"strings"
)

// PlotOptions configures [LossCurveSVG] and [LossCurvePNG]. The zero value
// gives a 640x400 linear plot of the raw curve.
type PlotOptions struct {
	// Width and Height of the plot in pixels; <= 0 means 640 and 400.
	Width, Height int
	// LogY draws the y axis on a log10 scale. Points <= 0 cannot be shown
	// on it and are skipped (they break the line).
	LogY bool
	// XLabel and YLabel name the axes; empty means "step" and "loss".
	XLabel, YLabel string
	// SmoothWindow > 1 draws, on top of the raw curve, a trailing moving
	// average over that many points (see [MovingAverage]).
	SmoothWindow int
	// SmoothEMA in (0, 1), used when SmoothWindow <= 1, draws a debiased
	// exponential moving average with that weight on the past, as in
	// TensorBoard (e.g. 0.9; see [EMA]).
	SmoothEMA float64
	// HideRaw draws only the smoothed curve (when smoothing is on).
	HideRaw bool
	// MaxPoints caps the vertices per curve: longer curves keep every k-th
	// point (smoothing uses all of them) and always the last one. 0 means
	// 2000; < 0 means no limit.
	MaxPoints int
}

// MovingAverage returns the trailing moving average of xs: out[i] is the
// mean of the finite values among xs[i-window+1 .. i] (fewer at the start),
// or NaN if there are none. window <= 1 returns a copy of xs.
func MovingAverage(xs []float64, window int) []float64 {
	out := make([]float64, len(xs))
	if window <= 1 {
		copy(out, xs)
		return out
	}
	var sum float64
	var count int
	for i, x := range xs {
		if isFinite(x) {
			sum += x
			count++
		}
		if j := i - window; j >= 0 && isFinite(xs[j]) {
			sum -= xs[j]
			count--
		}
		if count > 0 {
			out[i] = sum / float64(count)
		} else {
			out[i] = math.NaN()
			sum = 0 // Reset accumulated rounding error.
		}
	}
	return out
}

// EMA returns the debiased exponential moving average of xs with weight beta
// on the past, as TensorBoard's smoothing: s = beta*s + (1-beta)*x over the
// finite values, reported as s/(1-beta^k) after k finite values, so the curve
// starts at the first value instead of at zero. Non-finite values are skipped
// (the previous average is repeated; NaN before the first finite value).
// beta <= 0 returns a copy of xs; beta >= 1 is treated as 0.999.
func EMA(xs []float64, beta float64) []float64 {
	out := make([]float64, len(xs))
	if beta <= 0 {
		copy(out, xs)
		return out
	}
	beta = min(beta, 0.999)
	var s float64
	correction := 1.0 // beta^k
	for i, x := range xs {
		if isFinite(x) {
			s = beta*s + (1-beta)*x
			correction *= beta
		}
		if correction == 1 {
			out[i] = math.NaN()
		} else {
			out[i] = s / (1 - correction)
		}
	}
	return out
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// plotCurve is one line of the plot, in pixel coordinates, split into
// segments where points are missing.
type plotCurve struct {
	name     string
	svgColor string
	rgba     color.RGBA
	width    float64
	opacity  float64
	segments [][][2]float64
}

// plotTick is an axis tick: its pixel position along the axis and its label.
type plotTick struct {
	pos   float64
	label string
}

// plotLayout is everything needed to render a plot, shared by the SVG and
// PNG renderers.
type plotLayout struct {
	w, h                     int
	left, top, right, bottom float64 // Plot area in pixels.
	xticks, yticks           []plotTick
	curves                   []plotCurve
	xlabel, ylabel           string
	empty                    bool
	legend                   bool // A smoothed curve is drawn: name the curves.
}

func (o PlotOptions) withDefaults() PlotOptions {
	if o.Width <= 0 {
		o.Width = 640
	}
	if o.Height <= 0 {
		o.Height = 400
	}
	if o.XLabel == "" {
		o.XLabel = "step"
	}
	if o.YLabel == "" {
		o.YLabel = "loss"
	}
	if o.MaxPoints == 0 {
		o.MaxPoints = 2000
	}
	return o
}

// buildPlot computes the layout of a loss plot. Only the first
// min(len(steps), len(losses)) points are used.
func buildPlot(steps []int, losses []float64, o PlotOptions) plotLayout {
	o = o.withDefaults()
	n := min(len(steps), len(losses))
	steps, losses = steps[:n], losses[:n]
	L := plotLayout{
		w: o.Width, h: o.Height,
		left: 70, top: 36, right: float64(o.Width) - 20, bottom: float64(o.Height) - 48,
		xlabel: o.XLabel, ylabel: o.YLabel,
	}
	if L.right < L.left+10 {
		L.right = L.left + 10
	}
	if L.bottom < L.top+10 {
		L.bottom = L.top + 10
	}

	// Curves in data space.
	type series struct {
		name string
		ys   []float64
	}
	var all []series
	var smooth []float64
	smoothName := ""
	switch {
	case o.SmoothWindow > 1:
		smooth, smoothName = MovingAverage(losses, o.SmoothWindow), fmt.Sprintf("moving average (%d)", o.SmoothWindow)
	case o.SmoothEMA > 0:
		smooth, smoothName = EMA(losses, o.SmoothEMA), "EMA "+strconv.FormatFloat(min(o.SmoothEMA, 0.999), 'g', -1, 64)
	}
	if smooth == nil || !o.HideRaw {
		all = append(all, series{o.YLabel, losses})
	}
	if smooth != nil {
		all = append(all, series{smoothName, smooth})
		L.legend = true
	}
	valid := func(y float64) bool { return isFinite(y) && (!o.LogY || y > 0) }
	ty := func(y float64) float64 {
		if o.LogY {
			return math.Log10(y)
		}
		return y
	}

	// Ranges.
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1) // Transformed space.
	for _, s := range all {
		for i, y := range s.ys {
			if !valid(y) {
				continue
			}
			xmin, xmax = min(xmin, float64(steps[i])), max(xmax, float64(steps[i]))
			ymin, ymax = min(ymin, ty(y)), max(ymax, ty(y))
		}
	}
	if math.IsInf(xmin, 0) {
		L.empty = true
		return L
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	if ymax == ymin {
		d := 0.1
		if !o.LogY {
			d = math.Max(math.Abs(ymin)*0.1, 1e-3)
		}
		ymin, ymax = ymin-d, ymax+d
	} else {
		d := (ymax - ymin) * 0.05
		ymin, ymax = ymin-d, ymax+d
	}
	px := func(x float64) float64 { return L.left + (x-xmin)/(xmax-xmin)*(L.right-L.left) }
	py := func(t float64) float64 { return L.bottom - (t-ymin)/(ymax-ymin)*(L.bottom-L.top) }

	// Ticks.
	for _, v := range linearTicks(xmin, xmax, 6, 1) {
		L.xticks = append(L.xticks, plotTick{px(v), formatStep(v)})
	}
	if o.LogY {
		for _, t := range logTicks(math.Pow(10, ymin), math.Pow(10, ymax)) {
			L.yticks = append(L.yticks, plotTick{py(math.Log10(t.value)), t.label})
		}
	} else {
		step := niceStep(ymax-ymin, 5)
		for _, v := range linearTicks(ymin, ymax, 5, 0) {
			L.yticks = append(L.yticks, plotTick{py(v), formatLinear(v, step)})
		}
	}

	// Which indices become vertices.
	idx := make([]int, 0, n)
	stride := 1
	if o.MaxPoints > 0 && n > o.MaxPoints {
		stride = (n + o.MaxPoints - 1) / o.MaxPoints
	}
	for i := 0; i < n; i += stride {
		idx = append(idx, i)
	}
	if n > 0 && idx[len(idx)-1] != n-1 {
		idx = append(idx, n-1)
	}

	for k, s := range all {
		c := plotCurve{name: s.name, svgColor: "#1f77b4", rgba: color.RGBA{0x1f, 0x77, 0xb4, 0xff}, width: 1.5, opacity: 1}
		if smooth != nil && k == 0 && len(all) == 2 { // Faded raw curve under the smoothed one.
			c.opacity, c.width, c.rgba = 0.35, 1, color.RGBA{0xb4, 0xd1, 0xe8, 0xff}
		} else if smooth != nil {
			c.width = 2
		}
		var seg [][2]float64
		for _, i := range idx {
			y := s.ys[i]
			if !valid(y) {
				if len(seg) > 0 {
					c.segments = append(c.segments, seg)
					seg = nil
				}
				continue
			}
			seg = append(seg, [2]float64{px(float64(steps[i])), py(ty(y))})
		}
		if len(seg) > 0 {
			c.segments = append(c.segments, seg)
		}
		L.curves = append(L.curves, c)
	}
	return L
}

// niceStep returns a step of 1, 2 or 5 times a power of ten that splits span
// into about target intervals.
func niceStep(span float64, target int) float64 {
	if !(span > 0) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(target)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	f := raw / mag
	switch {
	case f < 1.5:
		return mag
	case f < 3:
		return 2 * mag
	case f < 7:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// linearTicks returns the multiples of a nice step (at least minStep) within
// [lo, hi].
func linearTicks(lo, hi float64, target int, minStep float64) []float64 {
	if !(hi > lo) {
		return nil
	}
	step := max(niceStep(hi-lo, target), minStep)
	var out []float64
	for k := math.Ceil(lo/step - 1e-9); k <= math.Floor(hi/step+1e-9) && len(out) < 50; k++ {
		v := k * step
		if v == 0 {
			v = 0 // Avoid "-0".
		}
		out = append(out, v)
	}
	return out
}

// formatLinear formats a tick value with as many decimals as its step needs.
func formatLinear(v, step float64) string {
	a := math.Abs(v)
	if a >= 1e6 || (a != 0 && a < 1e-4) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	dec := 0
	if step < 1 {
		dec = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// formatStep formats an x (training step) tick: 20000 as "20k".
func formatStep(v float64) string {
	i := int64(math.Round(v))
	if i != 0 && i%1000 == 0 && (i >= 10000 || i <= -10000) {
		return strconv.FormatInt(i/1000, 10) + "k"
	}
	return strconv.FormatInt(i, 10)
}

type logTick struct {
	value float64
	label string
}

// logTicks returns tick values within [lo, hi] (both > 0) for a log axis:
// powers of ten, or 1-2-5 / 1..9 multiples of them when the range is too
// narrow to hold two powers of ten, or linear ticks as a last resort.
func logTicks(lo, hi float64) []logTick {
	e0, e1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	for _, mults := range [][]int{{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		var out []logTick
		every := 1
		if len(mults) == 1 && e1-e0 > 10 {
			every = (e1 - e0 + 9) / 10
		}
		for e := e0; e <= e1; e++ {
			if len(mults) == 1 && (e-e0)%every != 0 {
				continue
			}
			for _, m := range mults {
				// Parse the decimal text so that e.g. 2e-3 is exactly 0.002.
				v, _ := strconv.ParseFloat(fmt.Sprintf("%de%d", m, e), 64)
				if v >= lo*(1-1e-12) && v <= hi*(1+1e-12) {
					out = append(out, logTick{v, strconv.FormatFloat(v, 'g', -1, 64)})
				}
			}
		}
		if len(out) >= 2 {
			return out
		}
	}
	step := niceStep(hi-lo, 4)
	var out []logTick
	for _, v := range linearTicks(lo, hi, 4, 0) {
		if v > 0 {
			out = append(out, logTick{v, formatLinear(v, step)})
		}
	}
	return out
}

// f1 formats a pixel coordinate.
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// LossCurveSVG returns a self-contained SVG line plot of losses against
// steps, with axes, ticks, tick labels, axis labels, a title and, when
// opts asks for smoothing, a smoothed curve drawn over a faded raw one with
// a legend. Only the first min(len(steps), len(losses)) points are used;
// NaN and infinite losses (and, with LogY, losses <= 0) are skipped and
// break the line. With no drawable point the plot says "no data".
// Display it with [ShowSVG] or save it with [WriteFile].
func LossCurveSVG(steps []int, losses []float64, title string, opts PlotOptions) string {
	L := buildPlot(steps, losses, opts)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", L.w, L.h, L.w, L.h)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", L.w, L.h)
	if title != "" {
		fmt.Fprintf(&b, `<text x="%s" y="22" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n", f1(float64(L.w)/2), html.EscapeString(title))
	}
	// Grid lines and ticks.
	b.WriteString(`<g stroke="#e0e0e0" stroke-width="1">` + "\n")
	for _, t := range L.xticks {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f1(t.pos), f1(L.top), f1(t.pos), f1(L.bottom))
	}
	for _, t := range L.yticks {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f1(L.left), f1(t.pos), f1(L.right), f1(t.pos))
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g stroke="black" stroke-width="1">` + "\n")
	for _, t := range L.xticks {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f1(t.pos), f1(L.bottom), f1(t.pos), f1(L.bottom+5))
	}
	for _, t := range L.yticks {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", f1(L.left-5), f1(t.pos), f1(L.left), f1(t.pos))
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g fill="black">` + "\n")
	for _, t := range L.xticks {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", f1(t.pos), f1(L.bottom+18), html.EscapeString(t.label))
	}
	for _, t := range L.yticks {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" dy="0.32em">%s</text>`+"\n", f1(L.left-8), f1(t.pos), html.EscapeString(t.label))
	}
	fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", f1((L.left+L.right)/2), f1(float64(L.h)-10), html.EscapeString(L.xlabel))
	fmt.Fprintf(&b, `<text transform="translate(16,%s) rotate(-90)" text-anchor="middle">%s</text>`+"\n", f1((L.top+L.bottom)/2), html.EscapeString(L.ylabel))
	b.WriteString("</g>\n")
	if L.empty {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" fill="#888">no data</text>`+"\n", f1((L.left+L.right)/2), f1((L.top+L.bottom)/2))
	}
	// Curves.
	for _, c := range L.curves {
		for _, seg := range c.segments {
			if len(seg) == 1 {
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="%s" fill="%s" fill-opacity="%g"/>`+"\n", f1(seg[0][0]), f1(seg[0][1]), f1(c.width+0.5), c.svgColor, c.opacity)
				continue
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="%g" stroke-opacity="%g" stroke-linejoin="round" points="`, c.svgColor, c.width, c.opacity)
			for i, p := range seg {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(f1(p[0]))
				b.WriteByte(',')
				b.WriteString(f1(p[1]))
			}
			b.WriteString(`"/>` + "\n")
		}
	}
	// Frame on top of the curves, then the legend.
	fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="black" stroke-width="1"/>`+"\n", f1(L.left), f1(L.top), f1(L.right-L.left), f1(L.bottom-L.top))
	if L.legend && len(L.curves) > 0 {
		longest := 0
		for _, c := range L.curves {
			longest = max(longest, len([]rune(c.name)))
		}
		width := 44 + 7*float64(longest) // About 7 pixels per character at 12px.
		x, y := L.right-8-width, L.top+8
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%d" fill="white" fill-opacity="0.8" stroke="#ccc"/>`+"\n", f1(x), f1(y), f1(width), 8+18*len(L.curves))
		for i, c := range L.curves {
			ly := y + 14 + 18*float64(i)
			fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%g" stroke-opacity="%g"/>`+"\n", f1(x+8), f1(ly), f1(x+30), f1(ly), c.svgColor, c.width+0.5, c.opacity)
			fmt.Fprintf(&b, `<text x="%s" y="%s" dy="0.32em">%s</text>`+"\n", f1(x+36), f1(ly), html.EscapeString(c.name))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// LossCurvePNG rasterizes the same plot as [LossCurveSVG] into an RGBA
// image, but without any text (no title, tick labels, axis labels or legend:
// the standard library has no font rendering): frame, grid lines, tick marks
// and curves only. Prefer the SVG for notebooks and reports; the PNG suits
// quick looks and image viewers.
func LossCurvePNG(steps []int, losses []float64, opts PlotOptions) *image.RGBA {
	L := buildPlot(steps, losses, opts)
	img := image.NewRGBA(image.Rect(0, 0, L.w, L.h))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	grid := color.RGBA{0xe0, 0xe0, 0xe0, 0xff}
	black := color.RGBA{0, 0, 0, 0xff}
	for _, t := range L.xticks {
		drawLine(img, t.pos, L.top, t.pos, L.bottom, grid, 1)
		drawLine(img, t.pos, L.bottom, t.pos, L.bottom+5, black, 1)
	}
	for _, t := range L.yticks {
		drawLine(img, L.left, t.pos, L.right, t.pos, grid, 1)
		drawLine(img, L.left-5, t.pos, L.left, t.pos, black, 1)
	}
	for _, c := range L.curves {
		w := 1
		if c.width >= 2 {
			w = 2
		}
		for _, seg := range c.segments {
			if len(seg) == 1 {
				drawLine(img, seg[0][0], seg[0][1], seg[0][0], seg[0][1], c.rgba, 2)
			}
			for i := 1; i < len(seg); i++ {
				drawLine(img, seg[i-1][0], seg[i-1][1], seg[i][0], seg[i][1], c.rgba, w)
			}
		}
	}
	drawLine(img, L.left, L.top, L.right, L.top, black, 1)
	drawLine(img, L.left, L.bottom, L.right, L.bottom, black, 1)
	drawLine(img, L.left, L.top, L.left, L.bottom, black, 1)
	drawLine(img, L.right, L.top, L.right, L.bottom, black, 1)
	return img
}

// drawLine draws a line with Bresenham's algorithm, w pixels thick (1 or 2),
// clipped to the image.
func drawLine(img *image.RGBA, fx0, fy0, fx1, fy1 float64, c color.RGBA, w int) {
	x0, y0 := int(math.Round(fx0)), int(math.Round(fy0))
	x1, y1 := int(math.Round(fx1)), int(math.Round(fy1))
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	r := img.Bounds()
	set := func(x, y int) {
		if image.Pt(x, y).In(r) {
			img.SetRGBA(x, y, c)
		}
	}
	err := dx + dy
	for {
		set(x0, y0)
		if w > 1 {
			set(x0+1, y0)
			set(x0, y0+1)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
