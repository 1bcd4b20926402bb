package main

import (
	"path/filepath"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/kernel"
)

// interpolationNoise returns n starting noises [n, size, size, 1] along the spherical path from the
// first image's starting noise of seed to that of seed+1 (what sample draws for them by default).
func interpolationNoise(seed int64, n, size int) (*tensors.Tensor, error) {
	per := size * size
	path, err := diffusion.SlerpPath(diffusion.StartNoise(seed, per), diffusion.StartNoise(seed+1, per), n)
	if err != nil {
		return nil, err
	}
	return tensors.FromFlatDataAndDimensions(path, n, size, size, 1), nil
}

// writeStripGIF writes the images of an interpolation strip as the frames of an animation that
// goes there and back.
func writeStripGIF(path string, images *tensors.Tensor) error {
	b, err := experiment.BatchOf(images)
	if err != nil {
		return err
	}
	return kernel.WriteGIF(path, kernel.GIF(kernel.BackAndForth(b), kernel.GIFOptions{Scale: 4 * experiment.GridScale, Delay: 12}))
}

// inpaintOptions sets opts to complete --n MNIST test digits with the half --inpaint hidden and
// returns those inputs, for inputsFile. A class-conditional model gets the digits' own labels
// unless --digit chose others.
func (o *options) inpaintOptions(opts *diffusion.SampleOptions, m *experiment.Model) (*tensors.Tensor, error) {
	dir, err := mnist.ResolveDir(o.data)
	if err != nil {
		return nil, err
	}
	test, err := mnist.Load(dir, mnist.Test)
	if err != nil {
		return nil, err
	}
	size := m.Meta.UNet.ImageSize
	known, labels, err := experiment.DigitImages(test, o.n, size, o.seed)
	if err != nil {
		return nil, err
	}
	if opts.Mask, err = experiment.InpaintMask(o.inpaint, o.n, size); err != nil {
		return nil, err
	}
	opts.Known = known
	if opts.Labels != nil && o.Digit == "" {
		opts.Labels = labels
	}
	return experiment.Masked(known, opts.Mask)
}

// writeInputs writes the masked inputs of --inpaint as a grid of cols columns (0: square-ish).
func (o *options) writeInputs(inputs *tensors.Tensor, cols int) (string, error) {
	b, err := experiment.BatchOf(inputs)
	if err != nil {
		return "", err
	}
	path := filepath.Join(o.out, inputsFile)
	return path, kernel.WritePNG(path, kernel.Grid(b, cols, 2, experiment.GridScale))
}
