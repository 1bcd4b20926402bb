package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/godiffusion/godiffusion/backend"
)

// Naive Go reference implementations (plain loops over NHWC float64 arrays) for the closed-form checks.

// nhwc is a dense float64 4D array.
type nhwc struct {
	d    [4]int
	data []float64
}

func newNHWC(d0, d1, d2, d3 int) *nhwc {
	return &nhwc{d: [4]int{d0, d1, d2, d3}, data: make([]float64, d0*d1*d2*d3)}
}

func randNHWC(rng *rand.Rand, d0, d1, d2, d3 int) *nhwc {
	a := newNHWC(d0, d1, d2, d3)
	for i := range a.data {
		a.data[i] = rng.NormFloat64()
	}
	return a
}

func (a *nhwc) idx(i, j, k, l int) int { return ((i*a.d[1]+j)*a.d[2]+k)*a.d[3] + l }
func (a *nhwc) at(i, j, k, l int) float64 {
	return a.data[a.idx(i, j, k, l)]
}
func (a *nhwc) tensor() *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(append([]float64(nil), a.data...), a.d[:]...)
}
func (a *nhwc) tensor32() *tensors.Tensor {
	f := make([]float32, len(a.data))
	for i, v := range a.data {
		f[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(f, a.d[:]...)
}

// refConv: cross-correlation of x [b,h,w,cin] with k [kh,kw,cin,cout], stride, paddings (top, bottom, left, right).
func refConv(x, k *nhwc, stride, top, bottom, left, right int) *nhwc {
	b, h, w, cin := x.d[0], x.d[1], x.d[2], x.d[3]
	kh, kw, cout := k.d[0], k.d[1], k.d[3]
	outH := (h+top+bottom-kh)/stride + 1
	outW := (w+left+right-kw)/stride + 1
	y := newNHWC(b, outH, outW, cout)
	for n := range b {
		for oy := range outH {
			for ox := range outW {
				for o := range cout {
					s := 0.0
					for i := range kh {
						for j := range kw {
							iy, ix := oy*stride+i-top, ox*stride+j-left
							if iy < 0 || iy >= h || ix < 0 || ix >= w {
								continue
							}
							for c := range cin {
								s += x.at(n, iy, ix, c) * k.at(i, j, c, o)
							}
						}
					}
					y.data[y.idx(n, oy, ox, o)] = s
				}
			}
		}
	}
	return y
}

// refConvTranspose: the scatter definition of a transposed convolution (transpose_kernel=False, as Flax),
// written independently of the dilate-and-convolve form: each input pixel (iy, ix) adds x*k[i,j] to output
// (iy*stride + i - low, ix*stride + j - low), cropped to the output size.
func refConvTranspose(x, k *nhwc, stride, low, outH, outW int) *nhwc {
	b, h, w, cin := x.d[0], x.d[1], x.d[2], x.d[3]
	kh, kw, cout := k.d[0], k.d[1], k.d[3]
	y := newNHWC(b, outH, outW, cout)
	for n := range b {
		for iy := range h {
			for ix := range w {
				for i := range kh {
					for j := range kw {
						// Dilated input position iy*stride sits at padded position iy*stride+low; output oy reads
						// padded positions oy..oy+kh-1, so tap i of output oy reads padded oy+i.
						oy, ox := iy*stride+low-i, ix*stride+low-j
						if oy < 0 || oy >= outH || ox < 0 || ox >= outW {
							continue
						}
						for c := range cin {
							for o := range cout {
								y.data[y.idx(n, oy, ox, o)] += x.at(n, iy, ix, c) * k.at(i, j, c, o)
							}
						}
					}
				}
			}
		}
	}
	return y
}

// refGroupNorm normalizes x [b,h,w,c] per (example, group), without scale/bias.
func refGroupNorm(x *nhwc, groups int, eps float64) *nhwc {
	b, h, w, c := x.d[0], x.d[1], x.d[2], x.d[3]
	cg := c / groups
	y := newNHWC(b, h, w, c)
	for n := range b {
		for gr := range groups {
			sum, count := 0.0, 0.0
			for i := range h {
				for j := range w {
					for l := gr * cg; l < (gr+1)*cg; l++ {
						sum += x.at(n, i, j, l)
						count++
					}
				}
			}
			mean := sum / count
			v := 0.0
			for i := range h {
				for j := range w {
					for l := gr * cg; l < (gr+1)*cg; l++ {
						d := x.at(n, i, j, l) - mean
						v += d * d
					}
				}
			}
			v /= count
			for i := range h {
				for j := range w {
					for l := gr * cg; l < (gr+1)*cg; l++ {
						y.data[y.idx(n, i, j, l)] = (x.at(n, i, j, l) - mean) / math.Sqrt(v+eps)
					}
				}
			}
		}
	}
	return y
}

// maxAbsDiff compares a tensor with a reference array, requiring equal shapes.
func maxAbsDiff(t *testing.T, got *tensors.Tensor, want *nhwc) float64 {
	t.Helper()
	dims := got.Shape().Dimensions
	if len(dims) != 4 || dims[0] != want.d[0] || dims[1] != want.d[1] || dims[2] != want.d[2] || dims[3] != want.d[3] {
		t.Fatalf("shape: got %s, want %v", got.Shape(), want.d)
	}
	var values []float64
	if got.DType().Size() == 8 {
		values = tensors.MustCopyFlatData[float64](got)
	} else {
		for _, v := range tensors.MustCopyFlatData[float32](got) {
			values = append(values, float64(v))
		}
	}
	worst := 0.0
	for i, v := range values {
		worst = max(worst, math.Abs(v-want.data[i]))
	}
	return worst
}

var testBackend compute.Backend

func getBackend(t testing.TB) compute.Backend {
	t.Helper()
	if testBackend == nil {
		b, err := backend.New()
		if err != nil {
			t.Fatalf("backend: %v", err)
		}
		testBackend = b
	}
	return testBackend
}

type tensorsT = tensors.Tensor

func shapesMake(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }
