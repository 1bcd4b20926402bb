package layers

import (
	"errors"
	"fmt"
	"math"
	"slices"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// UNetConfig configures the tutorial's U-Net (see UNet).
type UNetConfig struct {
	// ImageSize is the height and width of the (square) input images, e.g. 32 for the tutorial's MNIST
	// resized to 32x32. It must be divisible by 2^(levels-1).
	ImageSize int

	// BaseWidth is the tutorial's UNet(dim): the width of the first level (32 in the tutorial).
	BaseWidth int

	// WidthMults are the tutorial's dim_scale_factor: level i has BaseWidth*WidthMults[i] channels
	// ((1, 2, 4, 8) in the tutorial). Each level but the last halves the resolution.
	WidthMults []int

	// AttentionResolutions lists the resolutions (height of the feature map, in pixels) whose levels get the
	// residual attention block x + GroupNorm(Attention(x)), in both the down and the up path. The tutorial
	// has attention at every level: 32, 16, 8, 4.
	AttentionResolutions []int

	// MiddleAttention enables the attention block between the two middle ResnetBlocks (as the tutorial).
	MiddleAttention bool

	// Groups is the number of GroupNorm groups (8 in the tutorial). Every level width must be divisible by it.
	Groups int

	// Heads is the number of attention heads (8 in the tutorial). Widths of levels with attention (and the
	// last level's, for the middle attention) must be divisible by it.
	Heads int

	// TimeDim is the sinusoidal time embedding dimension; the time MLP has 4*TimeDim features.
	// The tutorial uses TimeEmbedding(dim) = BaseWidth; 0 means BaseWidth.
	TimeDim int

	// PatchSize p > 1 folds each p x p patch of pixels into channels before the stem (space to depth:
	// [B, H, W, C] -> [B, H/p, W/p, p*p*C]) and unfolds the output back, so every level runs at 1/p
	// of the image resolution: about p^2 times fewer FLOPs and activations for the same widths.
	// 0 or 1 means no patching (the tutorial).
	PatchSize int

	// InitScale multiplies every initial kernel (LeCun normal and Xavier uniform, see ParamKernelInitScale);
	// 0 means 1, Flax's initialization as in the tutorial. Smaller initial kernels make the normalized
	// layers' Adam steps relatively larger: with the tutorial's blocks, 0.1 roughly halves the loss after
	// the first 100 steps. With PreNorm, whose branch ends start at zero anyway, too small a scale shrinks
	// the skip connections that change widths: the CPU preset uses 1/√3, PyTorch's default scale.
	InitScale float64 `json:",omitempty"`

	// PreNorm replaces the tutorial's blocks by pre-activation ones (PreNormResnetBlock,
	// PreNormAttentionBlock; DDPM's and ADM's design) and ends with GroupNorm, SiLU and a 1x1 output
	// convolution that starts at zero. Every residual branch then starts at zero and the U-Net starts as
	// a chain of skip connections; it learns several times faster per image than with the tutorial's
	// blocks, whose normalized outputs are added to every block's result. false is the tutorial's network.
	PreNorm bool `json:",omitempty"`

	// Classes > 0 makes the network class-conditional (classifier-free guidance, Ho & Salimans 2022):
	// a learned embedding of the label (ClassEmbedding, with Classes+1 rows, the last meaning "no
	// label") is added to the time embedding. 0 is the tutorial's unconditional network.
	Classes int `json:",omitempty"`
}

// Tutorial returns the configuration of the tutorial's network exactly, UNet(32) with dim_scale_factor
// (1, 2, 4, 8), 8 GroupNorm groups, 8 attention heads, and attention at every level and in the middle:
// 12,816,361 parameters. It is a GPU model: on CPU the 32x32 attention dominates and a batch of 64
// needs tens of GB of memory.
func Tutorial() UNetConfig {
	return UNetConfig{
		ImageSize:            32,
		BaseWidth:            32,
		WidthMults:           []int{1, 2, 4, 8},
		AttentionResolutions: []int{32, 16, 8, 4},
		MiddleAttention:      true,
		Groups:               8,
		Heads:                8,
	}
}

// CPU returns a reduced configuration trainable on a few CPU cores: widths 16, 32, 64, 128, attention only
// at 8x8 and 4x4 (and in the middle), 8 groups and 4 heads, pre-activation blocks (PreNorm) with initial
// kernels scaled by 1/√3 (InitScale, the scale of PyTorch's default initialization); 3,123,097 parameters.
func CPU() UNetConfig {
	return UNetConfig{
		ImageSize:            32,
		BaseWidth:            16,
		WidthMults:           []int{1, 2, 4, 8},
		AttentionResolutions: []int{8, 4},
		MiddleAttention:      true,
		Groups:               8,
		Heads:                4,
		InitScale:            1 / math.Sqrt(3), // PyTorch's default scale: better than 0.1 with PreNorm.
		PreNorm:              true,
	}
}

// Tiny returns a very small configuration for tests and smoke runs: two levels of widths 8 and 16 on
// 32x32 images, 4 groups, 2 heads, attention only at the lowest level (16x16) and in the middle.
func Tiny() UNetConfig {
	return UNetConfig{
		ImageSize:            32,
		BaseWidth:            8,
		WidthMults:           []int{1, 2},
		AttentionResolutions: []int{16},
		MiddleAttention:      true,
		Groups:               4,
		Heads:                2,
	}
}

// Widths returns the channels of each level: BaseWidth * WidthMults[i].
func (c UNetConfig) Widths() []int {
	widths := make([]int, len(c.WidthMults))
	for i, m := range c.WidthMults {
		widths[i] = c.BaseWidth * m
	}
	return widths
}

// StemWidth returns the channels of the 7x7 input convolution: BaseWidth/3*2, as the tutorial (32 -> 20).
func (c UNetConfig) StemWidth() int { return c.BaseWidth / 3 * 2 }

// TimeEmbeddingDim returns the sinusoidal embedding dimension: TimeDim, or BaseWidth if TimeDim is 0.
func (c UNetConfig) TimeEmbeddingDim() int {
	if c.TimeDim > 0 {
		return c.TimeDim
	}
	return c.BaseWidth
}

// Patch returns the patch size: PatchSize, or 1 if it is 0.
func (c UNetConfig) Patch() int { return max(c.PatchSize, 1) }

// Resolution returns the feature map height of level i: ImageSize / Patch() / 2^i.
func (c UNetConfig) Resolution(level int) int { return c.ImageSize / c.Patch() >> level }

// HasAttention reports whether level i has attention blocks.
func (c UNetConfig) HasAttention(level int) bool {
	return slices.Contains(c.AttentionResolutions, c.Resolution(level))
}

// Validate checks the configuration, returning an error describing every problem found.
func (c UNetConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	levels := len(c.WidthMults)
	if levels == 0 {
		add("WidthMults is empty: at least one level is needed")
	}
	if c.BaseWidth <= 0 {
		add("BaseWidth must be > 0, got %d", c.BaseWidth)
	} else if c.StemWidth() <= 0 {
		add("BaseWidth must be >= 2 so the stem convolution (BaseWidth/3*2 channels) is not empty, got %d", c.BaseWidth)
	}
	if c.Groups <= 0 {
		add("Groups must be > 0, got %d", c.Groups)
	}
	if c.Heads <= 0 {
		add("Heads must be > 0, got %d", c.Heads)
	}
	if c.TimeDim < 0 || (c.TimeEmbeddingDim() < 4 && c.BaseWidth > 0) {
		add("the time embedding dimension (TimeDim, or BaseWidth if 0) must be >= 4, got %d", c.TimeEmbeddingDim())
	}
	if c.Classes < 0 {
		add("Classes must be >= 0 (0: unconditional), got %d", c.Classes)
	}
	if c.PatchSize < 0 {
		add("PatchSize must be >= 0, got %d", c.PatchSize)
	}
	if !(c.InitScale >= 0) || math.IsInf(c.InitScale, 0) {
		add("InitScale must be a finite number >= 0 (0 means 1), got %g", c.InitScale)
	}
	if c.ImageSize <= 0 {
		add("ImageSize must be > 0, got %d", c.ImageSize)
	} else if levels > 0 && c.PatchSize >= 0 && c.ImageSize%(c.Patch()<<(levels-1)) != 0 {
		add("ImageSize %d must be divisible by PatchSize*2^(levels-1) = %d (patch %d, %d levels)",
			c.ImageSize, c.Patch()<<(levels-1), c.Patch(), levels)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i, w := range c.Widths() {
		if c.WidthMults[i] <= 0 {
			add("WidthMults[%d] must be > 0, got %d", i, c.WidthMults[i])
			continue
		}
		if w%c.Groups != 0 {
			add("level %d width %d (BaseWidth %d * %d) is not divisible by Groups %d", i, w, c.BaseWidth, c.WidthMults[i], c.Groups)
		}
		if c.HasAttention(i) && w%c.Heads != 0 {
			add("level %d width %d (attention at %dx%d) is not divisible by Heads %d", i, w, c.Resolution(i), c.Resolution(i), c.Heads)
		}
	}
	if c.MiddleAttention {
		if w := c.Widths()[levels-1]; w%c.Heads != 0 {
			add("middle width %d is not divisible by Heads %d", w, c.Heads)
		}
	}
	for _, r := range c.AttentionResolutions {
		found := false
		for i := range levels {
			found = found || c.Resolution(i) == r
		}
		if !found {
			var resolutions []int
			for i := range levels {
				resolutions = append(resolutions, c.Resolution(i))
			}
			add("AttentionResolutions has %d, which is not a level resolution (levels: %v)", r, resolutions)
		}
	}
	return errors.Join(errs...)
}

// UNet builds the tutorial's U-Net noise predictor: for noisy images x [batch, ImageSize, ImageSize, channels]
// and integer timesteps t [batch], it returns the predicted noise, shaped like x.
//
// Structure (tutorial's UNet.__call__): with PatchSize > 1, x is first folded into patches (SpaceToDepth)
// and the output unfolded (DepthToSpace); then a 7x7 stem convolution (padding 3) to StemWidth channels; the time
// embedding (TimeEmbedding); per level, 2 ResnetBlocks, an AttentionBlock (if the level's resolution is in
// AttentionResolutions), the result saved as skip, and a 4x4 stride-2 "SAME" convolution except at the last
// level; the middle: ResnetBlock, AttentionBlock (if MiddleAttention), ResnetBlock at the last level's width;
// per level in reverse, concat(skip, x) on channels, 2 ResnetBlocks, an AttentionBlock (as the down path),
// and a 4x4 stride-2 transposed convolution except at the last step; finally a ResnetBlock and a 1x1
// convolution to the input's channels. With PreNorm the blocks are PreNormResnetBlock and
// PreNormAttentionBlock, and GroupNorm and SiLU precede the output convolution, which starts at zero.
//
// With InitScale > 0, it sets ParamKernelInitScale on scope, so it applies to every kernel created under it.
// It panics if the configuration is invalid (see UNetConfig.Validate) or x doesn't match it.
// On a class-conditional configuration (Classes > 0) it is the unconditional prediction: see
// UNetWithLabels.
func UNet(scope *model.Scope, x, t *Node, cfg UNetConfig) *Node {
	return UNetWithLabels(scope, x, t, nil, cfg)
}

// UNetWithLabels is UNet conditioned on class labels [batch] (integers in [0, cfg.Classes], where
// cfg.Classes means "no label"): their ClassEmbedding is added to the time embedding. nil labels
// mean "no label" for every example. It panics if labels are given to an unconditional
// configuration (Classes = 0).
func UNetWithLabels(scope *model.Scope, x, t, labels *Node, cfg UNetConfig) *Node {
	if err := cfg.Validate(); err != nil {
		Panicf("layers.UNet: invalid configuration: %v", err)
	}
	if x.Rank() != 4 || x.Shape().Dim(1) != cfg.ImageSize || x.Shape().Dim(2) != cfg.ImageSize {
		Panicf("layers.UNet: x must be shaped [batch, %d, %d, channels], got %s", cfg.ImageSize, cfg.ImageSize, x.Shape())
	}
	if t.Rank() != 1 || t.Shape().Dim(0) != x.Shape().Dim(0) {
		Panicf("layers.UNet: t must be shaped [batch=%d], got %s", x.Shape().Dim(0), t.Shape())
	}
	if labels != nil && cfg.Classes == 0 {
		Panicf("layers.UNet: class labels given to an unconditional network (UNetConfig.Classes = 0)")
	}
	if labels != nil && (labels.Rank() != 1 || labels.Shape().Dim(0) != x.Shape().Dim(0)) {
		Panicf("layers.UNet: labels must be shaped [batch=%d], got %s", x.Shape().Dim(0), labels.Shape())
	}
	if cfg.InitScale > 0 {
		scope.SetParam(ParamKernelInitScale, cfg.InitScale)
	}
	t = ConvertDType(t, x.DType()) // Integer timesteps become floats, as the tutorial's jnp arithmetic does.
	channels := x.Shape().Dim(3)
	widths := cfg.Widths()
	levels := len(widths)
	groups, heads := cfg.Groups, cfg.Heads

	if p := cfg.Patch(); p > 1 {
		x = SpaceToDepth(x, p)
	}
	h := Conv(scope.In("stem"), x).Channels(cfg.StemWidth()).KernelSize(7).Padding(3).Done()
	temb := TimeEmbedding(scope.In("time_embedding"), t, cfg.TimeEmbeddingDim())
	if cfg.Classes > 0 {
		if labels == nil {
			labels = NoLabels(x.Graph(), x.Shape().Dim(0), cfg.Classes)
		}
		temb = Add(temb, ClassEmbedding(scope.In("class_embedding"), labels, cfg.Classes, temb.Shape().Dim(-1)))
	}

	resnet, attend := ResnetBlock, AttentionBlock
	if cfg.PreNorm {
		resnet, attend = PreNormResnetBlock, PreNormAttentionBlock
	}
	skips := make([]*Node, 0, levels)
	for i, width := range widths {
		s := scope.In("down_%d", i)
		h = resnet(s.In("resnet_0"), h, temb, width, groups)
		h = resnet(s.In("resnet_1"), h, temb, width, groups)
		if cfg.HasAttention(i) {
			h = attend(s.In("attention"), h, heads, groups)
		}
		skips = append(skips, h)
		if i != levels-1 {
			h = Conv(s.In("downsample"), h).Channels(width).KernelSize(4).Stride(2).Done()
		}
	}

	s := scope.In("middle")
	h = resnet(s.In("resnet_0"), h, temb, widths[levels-1], groups)
	if cfg.MiddleAttention {
		h = attend(s.In("attention"), h, heads, groups)
	}
	h = resnet(s.In("resnet_1"), h, temb, widths[levels-1], groups)

	for j := range levels {
		i := levels - 1 - j
		width := widths[i]
		s := scope.In("up_%d", i)
		h = Concatenate([]*Node{skips[i], h}, -1)
		h = resnet(s.In("resnet_0"), h, temb, width, groups)
		h = resnet(s.In("resnet_1"), h, temb, width, groups)
		if cfg.HasAttention(i) {
			h = attend(s.In("attention"), h, heads, groups)
		}
		if j != levels-1 {
			h = ConvTranspose(s.In("upsample"), h).Channels(width).KernelSize(4).Stride(2).Done()
		}
	}

	h = resnet(scope.In("final"), h, temb, widths[0], groups)
	var outputInit model.VariableInitializer // nil: Conv's default.
	if cfg.PreNorm {
		h = normSiLU(scope.In("output_norm"), h, groups)
		outputInit = ZerosInitializer
	}
	p := cfg.Patch()
	h = Conv(scope.In("output"), h).Channels(channels * p * p).KernelSize(1).KernelInitializer(outputInit).Done()
	if p > 1 {
		return DepthToSpace(h, p)
	}
	return h
}

// SpaceToDepth folds each p x p patch of x [B, H, W, C] into channels: [B, H/p, W/p, p*p*C], with the
// channels of a patch ordered (row, column, channel). H and W must be divisible by p.
func SpaceToDepth(x *Node, p int) *Node {
	b, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	if h%p != 0 || w%p != 0 {
		Panicf("layers.SpaceToDepth: spatial dimensions of %s are not divisible by %d", x.Shape(), p)
	}
	x = Reshape(x, b, h/p, p, w/p, p, c)
	x = TransposeAllAxes(x, 0, 1, 3, 2, 4, 5)
	return Reshape(x, b, h/p, w/p, p*p*c)
}

// DepthToSpace is the inverse of SpaceToDepth: [B, H, W, p*p*C] -> [B, H*p, W*p, C].
func DepthToSpace(x *Node, p int) *Node {
	b, h, w, pc := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	if pc%(p*p) != 0 {
		Panicf("layers.DepthToSpace: channels of %s are not divisible by %d", x.Shape(), p*p)
	}
	c := pc / (p * p)
	x = Reshape(x, b, h, w, p, p, c)
	x = TransposeAllAxes(x, 0, 1, 3, 2, 4, 5)
	return Reshape(x, b, h*p, w*p, c)
}
