package mnist

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

const (
	// Rows is the height of an MNIST image in pixels.
	Rows = 28
	// Cols is the width of an MNIST image in pixels.
	Cols = 28
	// PixelsPerImage is Rows*Cols.
	PixelsPerImage = Rows * Cols
	// NumClasses is the number of digit classes (labels are 0..9).
	NumClasses = 10

	// ImageMagic is the IDX magic number of an image file (uint8, 3 dimensions).
	ImageMagic = 0x00000803
	// LabelMagic is the IDX magic number of a label file (uint8, 1 dimension).
	LabelMagic = 0x00000801
)

// Errors wrapped by Load, for errors.Is. Each error message also names the
// file, the problem and how to fix it.
var (
	// ErrBadMagic: the file does not start with the expected IDX magic number.
	ErrBadMagic = errors.New("bad IDX magic number")
	// ErrBadDims: an image file whose images are not 28x28.
	ErrBadDims = errors.New("bad image dimensions")
	// ErrTruncated: the file holds less data than its header announces.
	ErrTruncated = errors.New("truncated IDX file")
	// ErrTrailingData: the file holds more data than its header announces.
	ErrTrailingData = errors.New("trailing data after IDX payload")
	// ErrCorruptGzip: the gzip stream is invalid, truncated or fails its checksum.
	ErrCorruptGzip = errors.New("corrupt gzip stream")
	// ErrCountMismatch: the image and label files hold different numbers of examples.
	ErrCountMismatch = errors.New("image and label counts differ")
	// ErrBadLabel: a label outside 0..9.
	ErrBadLabel = errors.New("label out of range")
)

// Split selects the training or the test set.
type Split int

const (
	// Train is the 60000-example training set (train-*-idx?-ubyte).
	Train Split = iota
	// Test is the 10000-example test set (t10k-*-idx?-ubyte).
	Test
)

// String returns "train" or "test".
func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case Test:
		return "test"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// ParseSplit parses "train" or "test" (case-insensitive).
func ParseSplit(s string) (Split, error) {
	switch strings.ToLower(s) {
	case "train":
		return Train, nil
	case "test", "t10k":
		return Test, nil
	}
	return 0, fmt.Errorf("mnist: unknown split %q (want train or test)", s)
}

// FileNames returns the base names, without ".gz", of the split's image and
// label files.
func (s Split) FileNames() (images, labels string) {
	prefix := "train"
	if s == Test {
		prefix = "t10k"
	}
	return prefix + "-images-idx3-ubyte", prefix + "-labels-idx1-ubyte"
}

// Dataset holds raw MNIST examples: Images[i] is the i-th 28x28 image in
// row-major order (0 = background, 255 = ink) and Labels[i] its digit.
type Dataset struct {
	// Split tells which set the examples come from.
	Split Split
	// Images holds the raw pixels, one [PixelsPerImage]uint8 per example.
	Images [][PixelsPerImage]uint8
	// Labels holds the digits 0..9, one per example.
	Labels []uint8
}

// Len returns the number of examples.
func (d *Dataset) Len() int { return len(d.Images) }

// Subset returns a Dataset with the first n examples (all of them if n is
// larger than Len, none if n < 0), for quick runs. It shares memory with d.
func (d *Dataset) Subset(n int) *Dataset {
	n = max(0, min(n, d.Len()))
	return &Dataset{Split: d.Split, Images: d.Images[:n:n], Labels: d.Labels[:n:n]}
}

// Load reads and validates the split's image and label files from dir. For
// each file it uses NAME if present, else NAME.gz; either may be
// gzip-compressed (detected from its content). It checks the IDX magic
// numbers, the 28x28 dimensions, that each file's length matches its header,
// the gzip integrity, that labels are 0..9 and that both files hold the same
// number of examples.
func Load(dir string, split Split) (*Dataset, error) {
	if split != Train && split != Test {
		return nil, fmt.Errorf("mnist: unknown split %v", split)
	}
	imgName, lblName := split.FileNames()
	imgPath, err := findFile(dir, imgName)
	if err != nil {
		return nil, err
	}
	lblPath, err := findFile(dir, lblName)
	if err != nil {
		return nil, err
	}
	images, err := readImages(imgPath)
	if err != nil {
		return nil, err
	}
	labels, err := readLabels(lblPath)
	if err != nil {
		return nil, err
	}
	d := &Dataset{Split: split, Images: images, Labels: labels}
	for i, l := range d.Labels {
		if l >= NumClasses {
			return nil, fmt.Errorf("mnist: %s: %w: label %d of example %d is not a digit 0..9; "+
				"the file is damaged or not MNIST; %s", lblPath, ErrBadLabel, l, i, damagedHint)
		}
	}
	if len(d.Images) != len(d.Labels) {
		return nil, fmt.Errorf("mnist: %w: %s holds %d images but %s holds %d labels; "+
			"the files do not belong together; %s", ErrCountMismatch, imgPath, len(d.Images), lblPath, len(d.Labels), damagedHint)
	}
	return d, nil
}

// findFile returns dir/name if it exists, else dir/name.gz.
func findFile(dir, name string) (string, error) {
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, name+".gz")} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("mnist: %w: neither %s nor %s.gz is a file in %s; %s",
		ErrNotFound, name, name, dir, fixHint)
}

// readImages reads and validates an IDX image file.
func readImages(path string) ([][PixelsPerImage]uint8, error) {
	x, err := openIDX(path, ImageMagic)
	if err != nil {
		return nil, err
	}
	defer x.close()
	// Grow as data arrives: a damaged gzip header count must not cause a
	// huge allocation up front (uncompressed sizes are checked in openIDX).
	imgs := make([][PixelsPerImage]uint8, 0, min(x.n, 1<<17))
	for i := range x.n {
		imgs = append(imgs, [PixelsPerImage]uint8{})
		if err := x.readFull(imgs[i][:], int64(i)*PixelsPerImage); err != nil {
			return nil, err
		}
	}
	return imgs, x.finish()
}

// readLabels reads and validates an IDX label file.
func readLabels(path string) ([]uint8, error) {
	x, err := openIDX(path, LabelMagic)
	if err != nil {
		return nil, err
	}
	defer x.close()
	lbls := make([]uint8, x.n)
	if err := x.readFull(lbls, 0); err != nil {
		return nil, err
	}
	return lbls, x.finish()
}

// idxFile is an open IDX file whose header has been read and checked.
type idxFile struct {
	path, kind string
	n, unit    int // element count from the header, bytes per element
	f          *os.File
	zr         *gzip.Reader // nil if the file is not compressed
	rec        *errRecorder // payload reader
}

// maxCount bounds the header's element count, so a damaged header cannot
// make Load allocate absurd amounts of memory.
const maxCount = 1 << 24

// openIDX opens path, decompresses it if it is gzip and checks its header:
// magic number, 28x28 dimensions for images and, for uncompressed files, that
// the file size matches the element count.
func openIDX(path string, magic uint32) (_ *idxFile, err error) {
	x := &idxFile{path: path, kind: "label", unit: 1}
	headerLen := 8
	if magic == ImageMagic {
		x.kind, x.unit, headerLen = "image", PixelsPerImage, 16
	}
	if x.f, err = os.Open(path); err != nil {
		return nil, fmt.Errorf("mnist: %s: %w; %s", path, err, fixHint)
	}
	defer func() { // on error, close what was opened
		if err != nil {
			x.close()
		}
	}()
	fi, err := x.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mnist: %s: %w; %s", path, err, damagedHint)
	}

	br := bufio.NewReaderSize(x.f, 1<<16)
	sniff, _ := br.Peek(2)
	isGzip := len(sniff) == 2 && sniff[0] == 0x1f && sniff[1] == 0x8b
	if !isGzip && strings.HasSuffix(path, ".gz") {
		return nil, fmt.Errorf("mnist: %s: %w: the name ends in .gz but the file has no gzip header; "+
			"the download is damaged; %s", path, ErrCorruptGzip, damagedHint)
	}
	x.rec = &errRecorder{r: br}
	if isGzip {
		if x.zr, err = gzip.NewReader(br); err != nil {
			return nil, fmt.Errorf("mnist: %s: %w: %w; the download is damaged; %s", path, ErrCorruptGzip, err, damagedHint)
		}
		x.rec.r = x.zr
	}

	// Header: magic, count, then rows and cols for images; all big-endian uint32.
	header := make([]byte, headerLen)
	if m, err := io.ReadFull(x.rec, header); err != nil {
		if x.rec.err != nil {
			return nil, x.corrupt("header", err)
		}
		return nil, fmt.Errorf("mnist: %s: %w: only %d bytes, less than the %d-byte IDX %s header; %s",
			path, ErrTruncated, m, headerLen, x.kind, damagedHint)
	}
	if got := binary.BigEndian.Uint32(header); got != magic {
		return nil, fmt.Errorf("mnist: %s: %w: got 0x%08x, want 0x%08x for an IDX %s file; "+
			"the file is not an MNIST %s file (or was swapped with another); %s",
			path, ErrBadMagic, got, magic, x.kind, x.kind, damagedHint)
	}
	count := binary.BigEndian.Uint32(header[4:])
	if magic == ImageMagic {
		rows, cols := binary.BigEndian.Uint32(header[8:]), binary.BigEndian.Uint32(header[12:])
		if rows != Rows || cols != Cols {
			return nil, fmt.Errorf("mnist: %s: %w: header says %dx%d images, want %dx%d; "+
				"the file is not MNIST; %s", path, ErrBadDims, rows, cols, Rows, Cols, damagedHint)
		}
	}
	if count > maxCount {
		return nil, fmt.Errorf("mnist: %s: %w: header announces %d %ss, more than the %d this reader accepts; "+
			"the header is damaged; %s", path, ErrTruncated, count, x.kind, maxCount, damagedHint)
	}
	x.n = int(count)
	if want := int64(headerLen) + int64(x.n)*int64(x.unit); !isGzip && fi.Size() != want {
		sentinel := ErrTruncated
		if fi.Size() > want {
			sentinel = ErrTrailingData
		}
		return nil, fmt.Errorf("mnist: %s: %w: header announces %d %ss (%d bytes with the header) but the file has %d bytes; "+
			"the file is damaged or its header count is wrong; %s", path, sentinel, x.n, x.kind, want, fi.Size(), damagedHint)
	}
	return x, nil
}

// readFull fills p from the payload; before is the number of payload bytes
// already read, for the error message.
func (x *idxFile) readFull(p []byte, before int64) error {
	m, err := io.ReadFull(x.rec, p)
	if err == nil {
		return nil
	}
	if x.rec.err != nil {
		return x.corrupt(x.kind+"s", err)
	}
	return fmt.Errorf("mnist: %s: %w: header announces %d %ss (%d bytes of data) but the data ends after %d bytes; "+
		"the file is damaged or its header count is wrong; %s",
		x.path, ErrTruncated, x.n, x.kind, int64(x.n)*int64(x.unit), before+int64(m), damagedHint)
}

// finish checks that nothing follows the payload. For gzip it reads the
// stream to its end, which also verifies its CRC-32 and length, and reports
// a damaged stream before any extra data.
func (x *idxFile) finish() error {
	extra, err := io.Copy(io.Discard, x.rec)
	if x.rec.err != nil || err != nil {
		return x.corrupt("end of the stream", err)
	}
	if extra > 0 {
		return fmt.Errorf("mnist: %s: %w: %d more bytes follow the %d %ss the header announces; "+
			"the header count is wrong or the file is not MNIST; %s", x.path, ErrTrailingData, extra, x.n, x.kind, damagedHint)
	}
	return nil
}

// corrupt is the error for a failure of the gzip decompressor.
func (x *idxFile) corrupt(where string, err error) error {
	if x.rec.err != nil {
		err = x.rec.err
	}
	return fmt.Errorf("mnist: %s: %w while reading the %s: %w; the download is damaged; %s",
		x.path, ErrCorruptGzip, where, err, damagedHint)
}

func (x *idxFile) close() {
	if x.zr != nil {
		x.zr.Close()
	}
	x.f.Close()
}

// errRecorder remembers the first error, other than io.EOF, of the reader it
// wraps: after a short read it tells a decompression failure from a clean
// end of stream.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
