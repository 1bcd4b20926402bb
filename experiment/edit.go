package experiment

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/godiffusion/godiffusion/diffusion/mnist"
)

// InpaintRegions lists the regions InpaintMask can leave to the model.
var InpaintRegions = []string{"lower", "upper", "left", "right"}

// InpaintMask returns the mask of n images size x size ([n, size, size, 1] float32) that keeps
// everything but region (one of InpaintRegions: that half is drawn by the model): 1 where the pixels
// are known, 0 where they are to be drawn (diffusion.SampleOptions.Mask).
func InpaintMask(region string, n, size int) (*tensors.Tensor, error) {
	if !slices.Contains(InpaintRegions, region) {
		return nil, fmt.Errorf("inpainting region %q: use one of %v", region, InpaintRegions)
	}
	m := make([]float32, n*size*size)
	for i := range m {
		y, x := (i/size)%size, i%size
		var unknown bool
		switch region {
		case "lower":
			unknown = y >= size/2
		case "upper":
			unknown = y < size/2
		case "left":
			unknown = x < size/2
		case "right":
			unknown = x >= size/2
		}
		if !unknown {
			m[i] = 1
		}
	}
	return tensors.FromFlatDataAndDimensions(m, n, size, size, 1), nil
}

// Masked returns images with the unknown pixels (mask 0) set to 0, mid-gray in the pictures: what
// the model is given to complete.
func Masked(images, mask *tensors.Tensor) (*tensors.Tensor, error) {
	x, err := tensors.CopyFlatData[float32](images)
	if err != nil {
		return nil, err
	}
	m, err := tensors.CopyFlatData[float32](mask)
	if err != nil {
		return nil, err
	}
	if len(x) != len(m) {
		return nil, fmt.Errorf("masking %d pixels with a mask of %d", len(x), len(m))
	}
	for i := range x {
		x[i] *= m[i]
	}
	return tensors.FromFlatDataAndDimensions(x, images.Shape().Dimensions...), nil
}

// DigitImages returns n images of an MNIST split chosen by seed (distinct, in the order of
// mnist.Permutation), preprocessed like the training data to size x size, and their labels.
func DigitImages(d *mnist.Dataset, n, size int, seed int64) (*tensors.Tensor, []int, error) {
	if n < 1 || n > d.Len() {
		return nil, nil, fmt.Errorf("%d images asked of a data set of %d", n, d.Len())
	}
	idx := mnist.Permutation(uint64(seed), 0, d.Len())[:n]
	im := d.PreprocessIndices(idx, size)
	labels := make([]int, n)
	for k, i := range idx {
		labels[k] = int(d.Labels[i])
	}
	return tensors.FromFlatDataAndDimensions(im.Data, n, im.Size, im.Size, 1), labels, nil
}
