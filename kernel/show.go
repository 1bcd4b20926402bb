package kernel

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/gif"
	"image/png"
	"time"

	"github.com/janpfeifer/gonb/gonbui"
)

// flushTimeout bounds how long Flush waits for GoNB.
var flushTimeout = 5 * time.Second

// Flush waits (at most 5 seconds) until GoNB has received everything
// displayed so far, and reports whether it has. GoNB stops reading a cell's
// display output as soon as the cell program exits, so output sent just
// before the end can be lost: end a cell's main with defer kernel.Flush().
// [Progress.Done] flushes by itself in GoNB. Outside GoNB it does nothing
// and returns false.
func Flush() bool {
	if !InGoNB() || gonbui.Error() != nil {
		return false
	}
	done := make(chan struct{})
	go func() {
		gonbui.Sync()
		close(done)
	}()
	select {
	case <-done:
		return shown()
	case <-time.After(flushTimeout):
		return false
	}
}

// InGoNB reports whether the program runs inside a GoNB notebook cell
// (gonbui.IsNotebook). Outside GoNB the Show* functions are no-ops.
func InGoNB() bool { return gonbui.IsNotebook }

// shown reports whether the last display reached GoNB.
func shown() bool { return gonbui.Error() == nil }

// ShowImage displays img inline as a PNG in the current GoNB cell output and
// reports whether it was sent. Outside GoNB it does nothing and returns
// false; it also returns false if img cannot be encoded (e.g. it is empty).
func ShowImage(img image.Image) bool {
	if !InGoNB() || img == nil {
		return false
	}
	if err := gonbui.DisplayImage(img); err != nil {
		return false
	}
	return shown()
}

// ShowGIF displays the animated GIF g inline as an HTML <img> with a base64
// data URI (see [GIFHTML]), which, unlike a raw image/gif output, survives
// conversion of the notebook to HTML. widthPx > 0 sets the displayed width
// (upscaled without smoothing); 0 keeps the natural size. It reports whether
// the GIF was sent; outside GoNB it does nothing and returns false.
func ShowGIF(g *gif.GIF, widthPx int) bool {
	if !InGoNB() {
		return false
	}
	html, err := GIFHTML(g, widthPx)
	if err != nil {
		return false
	}
	return ShowHTML(html)
}

// ShowSVG displays an SVG document (e.g. from [LossCurveSVG]) inline, wrapped
// in HTML so that it survives conversion of the notebook to HTML. It reports
// whether it was sent; outside GoNB it does nothing and returns false.
func ShowSVG(svg string) bool {
	if !InGoNB() {
		return false
	}
	gonbui.DisplaySVG(svg)
	return shown()
}

// ShowHTML displays html in the current GoNB cell output and reports whether
// it was sent; outside GoNB it does nothing and returns false.
func ShowHTML(html string) bool {
	if !InGoNB() {
		return false
	}
	gonbui.DisplayHTML(html)
	return shown()
}

// PNGDataURI encodes img as a "data:image/png;base64,..." URI for use in
// HTML reports.
func PNGDataURI(img image.Image) (string, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("kernel: encoding PNG: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// GIFDataURI encodes g as a "data:image/gif;base64,..." URI.
func GIFDataURI(g *gif.GIF) (string, error) {
	if g == nil || len(g.Image) == 0 {
		return "", fmt.Errorf("kernel: GIF has no frames")
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		return "", fmt.Errorf("kernel: encoding GIF: %w", err)
	}
	return "data:image/gif;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// GIFHTML returns a self-contained <img> element showing g from a data URI.
// widthPx > 0 adds a width attribute and pixelated rendering so upscaled
// digits stay sharp; 0 keeps the natural size.
func GIFHTML(g *gif.GIF, widthPx int) (string, error) {
	uri, err := GIFDataURI(g)
	if err != nil {
		return "", err
	}
	if widthPx > 0 {
		return fmt.Sprintf(`<img src="%s" width="%d" style="image-rendering: pixelated" alt="animation">`, uri, widthPx), nil
	}
	return fmt.Sprintf(`<img src="%s" alt="animation">`, uri), nil
}
