package main

import "github.com/godiffusion/godiffusion/layers"

// imageChannels is the channel count of the images the presets are trained on (MNIST, grey).
const imageChannels = 1

// ForwardMACs returns the multiply-adds of one forward pass of cfg's U-Net (layers.UNet) for one
// single-channel image, counted from the layer shapes: convolutions, Dense layers and the two attention
// products. Norms, activations, additions, the softmax and the sinusoidal embedding are ignored.
// The 4x4 stride-2 transposed convolution is counted as a convolution producing the 2x output with a
// 4x4 kernel over the stride-2 dilated input, of which a quarter of the taps are non-zero:
// outPixels*4*4*cin*cout/4. FLOPs are 2 x MACs; a training step costs about 3 x forward.
func ForwardMACs(cfg layers.UNetConfig) int64 {
	widths := cfg.Widths()
	levels := len(widths)
	td4 := int64(4 * cfg.TimeEmbeddingDim()) // Features of the time MLP.
	res := func(level int) int64 { return int64(cfg.Resolution(level)) }

	// Stem: 7x7 convolution from the image channels (times Patch()^2 after SpaceToDepth) to StemWidth.
	inChannels := int64(imageChannels * cfg.Patch() * cfg.Patch())
	s := res(0)
	macs := convMACs(s*s, 7, inChannels, int64(cfg.StemWidth()))
	// Time MLP: Dense(TimeDim -> 4 TimeDim), Dense(4 TimeDim -> 4 TimeDim).
	macs += int64(cfg.TimeEmbeddingDim())*td4 + td4*td4

	ch := int64(cfg.StemWidth())
	for i, w := range widths {
		r, w := res(i), int64(w)
		macs += resnetMACs(r*r, ch, w, td4) + resnetMACs(r*r, w, w, td4)
		ch = w
		if cfg.HasAttention(i) {
			macs += attentionMACs(r*r, w)
		}
		if i != levels-1 { // 4x4 stride-2 convolution to the half resolution.
			macs += convMACs((r/2)*(r/2), 4, w, w)
		}
	}

	r := res(levels - 1)
	macs += resnetMACs(r*r, ch, ch, td4)
	if cfg.MiddleAttention {
		macs += attentionMACs(r*r, ch)
	}
	macs += resnetMACs(r*r, ch, ch, td4)

	for j := range levels {
		i := levels - 1 - j
		r, w := res(i), int64(widths[i])
		cin := w + ch // concat(skip, h).
		macs += resnetMACs(r*r, cin, w, td4) + resnetMACs(r*r, w, w, td4)
		ch = w
		if cfg.HasAttention(i) {
			macs += attentionMACs(r*r, w)
		}
		if j != levels-1 { // 4x4 stride-2 transposed convolution to the double resolution.
			macs += convTransposeMACs((2*r)*(2*r), 4, w, w)
		}
	}

	s = res(0)
	macs += resnetMACs(s*s, ch, int64(widths[0]), td4)
	macs += convMACs(s*s, 1, int64(widths[0]), inChannels)
	return macs
}

// convMACs is a k x k convolution producing outPixels positions of cout channels from cin channels.
func convMACs(outPixels, k, cin, cout int64) int64 { return outPixels * k * k * cin * cout }

// convTransposeMACs is a k x k stride-2 transposed convolution producing outPixels positions: a k x k
// convolution over the 2-dilated input, where only 1 in 4 taps meets a non-zero input.
func convTransposeMACs(outPixels, k, cin, cout int64) int64 {
	return convMACs(outPixels, k, cin, cout) / 4
}

// resnetMACs is layers.ResnetBlock: 3x3 conv cin->cout, 3x3 conv cout->cout, 1x1 residual conv
// cin->cout, and the time Dense (4 TimeDim -> cout), once per image.
func resnetMACs(pixels, cin, cout, timeFeatures int64) int64 {
	return convMACs(pixels, 3, cin, cout) + convMACs(pixels, 3, cout, cout) + convMACs(pixels, 1, cin, cout) +
		timeFeatures*cout
}

// attentionMACs is layers.Attention over n tokens of c channels: qkv Dense (c -> 3c), q·kᵀ and
// weights·v (n x n x headDim per head, so n*n*c over all heads, each), and the out Dense (c -> c).
func attentionMACs(n, c int64) int64 { return n*c*3*c + 2*n*n*c + n*c*c }
