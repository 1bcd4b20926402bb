package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/png"
	"io"

	"github.com/godiffusion/godiffusion/internal/atomicfile"
)

// WriteAtomic creates or replaces the file at path with what write writes,
// atomically: readers see either the old file or the complete new one, never
// a partial file. It writes a temporary file in the same folder, syncs it and
// renames it over path; on any failure (including a panic in write) the
// temporary file is removed and path is left untouched. Missing parent
// folders are created; a replaced file keeps its permission bits.
func WriteAtomic(path string, write func(w io.Writer) error) error {
	return atomicfile.Write(path, write)
}

// WriteFile atomically writes data to path (see [WriteAtomic]), e.g. an SVG
// from [LossCurveSVG] as []byte(svg).
func WriteFile(path string, data []byte) error {
	return WriteAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WritePNG atomically writes img to path as a PNG (see [WriteAtomic]).
func WritePNG(path string, img image.Image) error {
	if img == nil {
		return errors.New("kernel: WritePNG: nil image")
	}
	return WriteAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// WriteGIF atomically writes the animated GIF g to path (see [WriteAtomic]).
func WriteGIF(path string, g *gif.GIF) error {
	if g == nil || len(g.Image) == 0 {
		return errors.New("kernel: WriteGIF: no frames")
	}
	// Encode first, so an encoding error never even creates a temporary file.
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		return fmt.Errorf("kernel: encoding %s: %w", path, err)
	}
	return WriteFile(path, buf.Bytes())
}
