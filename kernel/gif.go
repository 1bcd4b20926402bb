package kernel

import (
	"image"
	"image/gif"
)

// GIFOptions configures [GIF]. The zero value gives a square-ish grid with
// no padding, no upscaling and 0.1 s per frame.
type GIFOptions struct {
	// Cols, Pad and Scale lay out every frame as in [Grid].
	Cols, Pad, Scale int
	// Delay is the time each frame is shown, in hundredths of a second
	// (the GIF unit); <= 0 means 10. Browsers show delays below 2 as 10.
	Delay int
	// Hold is extra time, in hundredths of a second, added to the last
	// frame's delay so the final result stays visible before the loop
	// restarts (e.g. 200 for two seconds).
	Hold int
}

// GIF renders one grid per frame (each a [Batch], e.g. the batch being
// denoised at successive diffusion steps) into an animated GIF that loops
// forever, using the 256-level [GrayPalette]. All frames share the grid
// layout of opts; frames of different sizes are placed at the top-left of a
// canvas as large as the largest frame. Use [EvenlySpaced] to pick a few
// dozen of a sampler's hundreds of steps.
//
// GIF panics if a frame is inconsistent (see [Batch.Validate]).
func GIF(frames []Batch, opts GIFOptions) *gif.GIF {
	grids := make([]*image.Gray, len(frames))
	for i, f := range frames {
		grids[i] = Grid(f, opts.Cols, opts.Pad, opts.Scale)
	}
	return GIFFromGrays(grids, opts.Delay, opts.Hold)
}

// GIFFromGrays makes an animated GIF, looping forever, from ready-made gray
// images (for instance from [Grid]). delay and hold are as in [GIFOptions].
func GIFFromGrays(frames []*image.Gray, delay, hold int) *gif.GIF {
	if delay <= 0 {
		delay = 10
	}
	if hold < 0 {
		hold = 0
	}
	pal := GrayPalette()
	g := &gif.GIF{LoopCount: 0} // 0: loop forever.
	for _, f := range frames {
		r := f.Bounds()
		p := image.NewPaletted(image.Rect(0, 0, r.Dx(), r.Dy()), pal)
		for y := 0; y < r.Dy(); y++ {
			copy(p.Pix[y*p.Stride:y*p.Stride+r.Dx()], f.Pix[f.PixOffset(r.Min.X, r.Min.Y+y):])
		}
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, delay)
		g.Disposal = append(g.Disposal, gif.DisposalNone)
		g.Config.Width = max(g.Config.Width, r.Dx())
		g.Config.Height = max(g.Config.Height, r.Dy())
	}
	if n := len(g.Delay); n > 0 {
		g.Delay[n-1] += hold
	}
	g.Config.ColorModel = pal
	return g
}

// BackAndForth returns the images of b as one-image frames that go from the
// first to the last and back, without repeating either end: for an
// interpolation strip animated with [GIF] (0, 1, ..., n-1, n-2, ..., 1).
func BackAndForth(b Batch) []Batch {
	frames := make([]Batch, 0, max(2*b.N-2, b.N))
	for i := range b.N {
		frames = append(frames, b.Slice(i, i+1))
	}
	for i := b.N - 2; i > 0; i-- {
		frames = append(frames, b.Slice(i, i+1))
	}
	return frames
}

// EvenlySpaced returns k indices spread evenly over 0..n-1, including the
// first (0) and the last (n-1), in increasing order without duplicates; if
// k >= n it returns all n indices, and for k == 1 only the last one. Use it to choose which of a sampler's
// steps become GIF frames.
func EvenlySpaced(n, k int) []int {
	if n <= 0 || k <= 0 {
		return nil
	}
	if k >= n {
		k = n
	}
	if k == 1 {
		return []int{n - 1}
	}
	out := make([]int, 0, k)
	for i := 0; i < k; i++ {
		idx := (i*(n-1) + (k-1)/2) / (k - 1) // rounded i*(n-1)/(k-1)
		if len(out) == 0 || idx != out[len(out)-1] {
			out = append(out, idx)
		}
	}
	return out
}
