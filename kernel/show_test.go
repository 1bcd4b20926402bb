package kernel

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/gif"
	"image/png"
	"regexp"
	"strings"
	"testing"
)

func TestShowOutsideGoNB(t *testing.T) {
	if InGoNB() {
		t.Skip("running inside GoNB")
	}
	img := image.NewGray(image.Rect(0, 0, 2, 2))
	g := GIFFromGrays([]*image.Gray{img}, 0, 0)
	if ShowImage(img) || ShowGIF(g, 100) || ShowSVG("<svg/>") || ShowHTML("<b>x</b>") {
		t.Error("a Show function reported success outside GoNB")
	}
}

func TestGIFHTML(t *testing.T) {
	b := testBatch(4, 2, 2)
	g := GIF([]Batch{b, b, b}, GIFOptions{Scale: 2})
	h, err := GIFHTML(g, 256)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^<img src="data:image/gif;base64,([A-Za-z0-9+/=]+)" width="256" style="image-rendering: pixelated" alt="animation">$`).FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("unexpected HTML %.120s", h)
	}
	data, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	d, err := gif.DecodeAll(bytes.NewReader(data))
	if err != nil || len(d.Image) != 3 {
		t.Fatalf("embedded GIF: %v", err)
	}
	if h, _ := GIFHTML(g, 0); strings.Contains(h, "width") {
		t.Errorf("natural-size HTML has a width: %.80s", h)
	}
	if _, err := GIFHTML(&gif.GIF{}, 0); err == nil {
		t.Error("GIFHTML of an empty GIF succeeded")
	}

	uri, err := PNGDataURI(Grid(b, 2, 0, 1))
	if err != nil || !strings.HasPrefix(uri, "data:image/png;base64,") {
		t.Fatalf("PNGDataURI: %v %.40s", err, uri)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(uri, "data:image/png;base64,"))
	if img, err := png.Decode(bytes.NewReader(raw)); err != nil || img.Bounds().Dx() != 4 {
		t.Errorf("embedded PNG: %v", err)
	}
}
