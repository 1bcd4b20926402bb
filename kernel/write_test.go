package kernel

import (
	"bytes"
	"errors"
	"image"
	"image/gif"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	if err := WriteFile(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Errorf("content %q", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("new file mode %v, want 0644", fi.Mode().Perm())
	}

	// A failing writer, after writing part of its data, leaves the old file.
	boom := errors.New("boom")
	err := WriteAtomic(path, func(w io.Writer) error {
		if _, err := w.Write(bytes.Repeat([]byte("x"), 1<<17)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want one wrapping boom", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Errorf("destination clobbered: %d bytes", len(got))
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "out.txt" {
		t.Errorf("folder holds %v, want only out.txt", names)
	}

	// So does a panicking one.
	func() {
		defer func() { _ = recover() }()
		_ = WriteAtomic(path, func(w io.Writer) error { _, _ = w.Write([]byte("partial")); panic("boom") })
	}()
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Errorf("destination clobbered by a panic: %q", got)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("folder holds %v after a panic, want only out.txt", names)
	}

	// Replacing keeps the permission bits.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "second" {
		t.Errorf("content %q", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced file mode %v, want 0600", fi.Mode().Perm())
	}

	// Missing folders are created; a folder is not overwritten.
	nested := filepath.Join(dir, "a", "b", "c.bin")
	if err := WriteFile(nested, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "a"), []byte{1}); err == nil {
		t.Error("WriteFile over a folder succeeded")
	}
	if err := WriteFile(dir+string(filepath.Separator), []byte{1}); err == nil {
		t.Error("WriteFile to a folder path succeeded")
	}
	if names := dirNames(t, dir); len(names) != 2 {
		t.Errorf("folder holds %v, want out.txt and a", names)
	}
}

func TestWritePNGAndGIF(t *testing.T) {
	dir := t.TempDir()
	b := testBatch(4, 3, 3)
	b.Data[0] = 1
	img := Grid(b, 2, 1, 2)
	if err := WritePNG(filepath.Join(dir, "grid.png"), img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "grid.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Bounds() != img.Bounds() {
		t.Errorf("decoded PNG bounds %v, want %v", dec.Bounds(), img.Bounds())
	}
	if r, _, _, _ := dec.At(1, 1).RGBA(); r>>8 != 255 {
		t.Errorf("decoded pixel %d, want 255", r>>8)
	}

	g := GIF([]Batch{b, b}, GIFOptions{Delay: 5})
	if err := WriteGIF(filepath.Join(dir, "anim.gif"), g); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "anim.gif"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := gif.DecodeAll(bytes.NewReader(data)); err != nil || len(d.Image) != 2 {
		t.Errorf("decoded GIF: %v", err)
	}

	// Failing encoders leave nothing behind.
	if err := WritePNG(filepath.Join(dir, "empty.png"), image.NewGray(image.Rect(0, 0, 0, 0))); err == nil {
		t.Error("WritePNG of an empty image succeeded")
	}
	if err := WriteGIF(filepath.Join(dir, "none.gif"), &gif.GIF{}); err == nil {
		t.Error("WriteGIF without frames succeeded")
	}
	if names := dirNames(t, dir); len(names) != 2 {
		t.Errorf("folder holds %v, want grid.png and anim.gif", names)
	}
}
