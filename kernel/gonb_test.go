package kernel

import (
	"encoding/gob"
	"errors"
	"image"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/janpfeifer/gonb/gonbui"
	"github.com/janpfeifer/gonb/gonbui/protocol"
)

// TestGoNBHelper is the child process of TestInsideGoNB: it runs with GoNB's
// pipe variables pointing at plain files and displays one of everything.
func TestGoNBHelper(t *testing.T) {
	if os.Getenv("KERNEL_GONB_HELPER") != "1" {
		t.Skip("helper process of TestInsideGoNB")
	}
	if !InGoNB() {
		t.Fatal("InGoNB() is false with GONB_PIPE set")
	}
	b := testBatch(4, 2, 2)
	ok := ShowImage(Grid(b, 2, 1, 1)) &&
		ShowGIF(GIF([]Batch{b, b}, GIFOptions{}), 64) &&
		ShowSVG(LossCurveSVG([]int{1, 2}, []float64{1, 0.5}, "t", PlotOptions{})) &&
		ShowHTML("<b>hello</b>")
	if !ok {
		t.Fatalf("a Show function failed: %v", gonbui.Error())
	}
	p := NewProgress(2, "gonb")
	if p.Mode() != ProgressHTML {
		t.Fatalf("progress mode %v inside GoNB", p.Mode())
	}
	p.flush = nil // The back pipe is a plain file: GoNB never acknowledges.
	p.Update(1)
	p.Done()
	flushTimeout = 100 * time.Millisecond
	if Flush() {
		t.Error("Flush reported success without an acknowledgement")
	}
	if ShowImage(image.NewGray(image.Rect(0, 0, 0, 0))) {
		t.Error("ShowImage of an empty image reported success")
	}
}

// TestInsideGoNB checks what the Show functions and Progress send to GoNB,
// by running TestGoNBHelper as a child whose GoNB pipe is a plain file.
func TestInsideGoNB(t *testing.T) {
	if os.Getenv("KERNEL_GONB_HELPER") == "1" {
		t.Skip("in the helper")
	}
	dir := t.TempDir()
	out, back := filepath.Join(dir, "pipe"), filepath.Join(dir, "back")
	for _, f := range []string{out, back} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGoNBHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KERNEL_GONB_HELPER=1",
		protocol.GONB_PIPE_ENV+"="+out, protocol.GONB_PIPE_BACK_ENV+"="+back)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper failed: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := gob.NewDecoder(f)
	var msgs []protocol.DisplayData
	syncs := 0
	for {
		var d protocol.DisplayData
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Data[protocol.MIMECommValue]; ok {
			syncs++ // Flush's sync request.
			continue
		}
		msgs = append(msgs, d)
	}
	if syncs != 1 {
		t.Errorf("%d sync requests, want 1", syncs)
	}
	if len(msgs) != 6 {
		t.Fatalf("%d messages to GoNB, want 6 (image, gif, svg, html, 2 progress)", len(msgs))
	}
	if png, _ := msgs[0].Data[protocol.MIMEImagePNG].([]byte); len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Errorf("image message %v", msgs[0].Data)
	}
	html := func(i int) string { s, _ := msgs[i].Data[protocol.MIMETextHTML].(string); return s }
	if !strings.HasPrefix(html(1), `<img src="data:image/gif;base64,`) || !strings.Contains(html(1), `width="64"`) {
		t.Errorf("GIF message %.80q", html(1))
	}
	if !strings.Contains(html(2), "<svg") || html(3) != "<b>hello</b>" {
		t.Errorf("SVG/HTML messages %.60q, %q", html(2), html(3))
	}
	id := msgs[4].DisplayID
	if id == "" || msgs[5].DisplayID != id || !strings.Contains(html(5), "done in") || !strings.Contains(html(5), `<progress value="1" max="2"`) {
		t.Errorf("progress messages %q %q: %q", id, msgs[5].DisplayID, html(5))
	}
}
