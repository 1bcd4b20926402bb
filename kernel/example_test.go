package kernel_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godiffusion/godiffusion/kernel"
)

// Example shows the typical flow of a notebook cell or a batch job: report
// progress, tile samples into a grid, animate the denoising, plot the loss,
// then display inline (GoNB) or save atomically (scripts).
func Example() {
	// A fake clock so that the output is reproducible; real code omits WithClock.
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := kernel.NewProgress(3, "sample").WithClock(clock).WithOutput(os.Stdout, kernel.ProgressLog).WithItems(4, "img")

	// Four 2x2 "images" per denoising step, going from black (-1) to white (+1).
	var frames []kernel.Batch
	for step := 1; step <= 3; step++ {
		b := kernel.Batch{N: 4, H: 2, W: 2, Data: make([]float32, 16)}
		for i := range b.Data {
			b.Data[i] = float32(step - 2) // -1, 0, +1
		}
		frames = append(frames, b)
		now = now.Add(500 * time.Millisecond)
		p.Update(step, kernel.F("t", 3-step))
	}
	p.Done()

	grid := kernel.Grid(frames[2], 2, 1, 3) // 2 columns, 1 pixel padding, 3x upscaling.
	fmt.Println("grid:", grid.Bounds().Dx(), "x", grid.Bounds().Dy(), "pixel:", grid.GrayAt(1, 1).Y)

	anim := kernel.GIF(frames, kernel.GIFOptions{Cols: 2, Pad: 1, Scale: 3, Delay: 20, Hold: 100})
	fmt.Println("gif frames:", len(anim.Image), "delays:", anim.Delay)

	svg := kernel.LossCurveSVG([]int{1, 2, 3, 4}, []float64{1, 0.5, 0.3, 0.2}, "training loss", kernel.PlotOptions{LogY: true, SmoothEMA: 0.6})
	fmt.Println("svg polylines:", strings.Count(svg, "<polyline"))

	// Inside GoNB, show the results inline; outside, the Show functions do nothing.
	if kernel.InGoNB() {
		kernel.ShowImage(grid)
		kernel.ShowGIF(anim, 200)
		kernel.ShowSVG(svg)
	}
	// Scripts (and notebooks that keep results) save them atomically.
	dir, err := os.MkdirTemp("", "kernel-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	for _, err := range []error{
		kernel.WritePNG(filepath.Join(dir, "grid.png"), grid),
		kernel.WriteGIF(filepath.Join(dir, "denoise.gif"), anim),
		kernel.WriteFile(filepath.Join(dir, "loss.svg"), []byte(svg)),
	} {
		if err != nil {
			panic(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	fmt.Println("files written:", len(entries))
	// Output:
	// sample 1/3 (33.3%) 2.00 it/s 8.0 img/s elapsed 00:00 eta 00:01 t=2
	// sample 3/3 (100.0%) 2.00 it/s 8.0 img/s done in 00:01 t=0
	// grid: 15 x 15 pixel: 255
	// gif frames: 3 delays: [20 20 120]
	// svg polylines: 2
	// files written: 3
}

// ExampleToGray shows the pixel mapping from [-1, 1] to gray levels.
func ExampleToGray() {
	for _, v := range []float32{-1, -0.5, 0, 0.5, 1, 3} {
		fmt.Print(kernel.ToGray(v), " ")
	}
	fmt.Println()
	// Output: 0 64 128 191 255 255
}
