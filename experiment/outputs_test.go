package experiment

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/core/tensors/numpy"

	"github.com/godiffusion/godiffusion/kernel"
)

func TestImageFileName(t *testing.T) {
	for _, tc := range []struct {
		i, n int
		want string
	}{{0, 1, "00000.png"}, {42, 64, "00042.png"}, {99999, 100000, "99999.png"}, {7, 100001, "000007.png"}} {
		if got := ImageFileName(tc.i, tc.n); got != tc.want {
			t.Errorf("ImageFileName(%d, %d) = %q, want %q", tc.i, tc.n, got, tc.want)
		}
	}
}

// TestWriteNPY reads the array back with GoMLX's reader: uint8 [N, H, W, 1], -1 -> 0, 0 -> 128, 1 -> 255.
func TestWriteNPY(t *testing.T) {
	b := kernel.Batch{N: 2, H: 1, W: 3, Data: []float32{-1, 0, 1, -2, 0.5, 2}}
	path := filepath.Join(t.TempDir(), "sub", "x.npy")
	if err := WriteNPY(path, b); err != nil {
		t.Fatal(err)
	}
	x, err := numpy.FromNpyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := x.Shape(); s.DType != dtypes.Uint8 || !slices.Equal(s.Dimensions, []int{2, 1, 3, 1}) {
		t.Fatalf("read back %s, want uint8 [2 1 3 1]", s)
	}
	want := []uint8{0, 128, 255, 0, kernel.ToGray(0.5), 255}
	if got := tensors.MustCopyFlatData[uint8](x); !slices.Equal(got, want) {
		t.Errorf("pixels %v, want %v", got, want)
	}
	if err := WriteNPY(filepath.Join(t.TempDir(), "bad.npy"), kernel.Batch{N: 2, H: 1, W: 1, Data: []float32{0}}); err == nil {
		t.Error("an inconsistent batch was written")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files beside the array, want none (no temporary file left)", len(entries)-1)
	}
}
