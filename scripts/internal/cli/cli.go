// Package cli holds what the batch commands under scripts/ share: the main function's plumbing
// (signals, --help, exit codes), flag validation, and the sampler flags.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/gomlx/compute"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
)

// ErrInterrupted is wrapped by a command's error when Ctrl-C (SIGINT) or SIGTERM stopped it.
var ErrInterrupted = errors.New("interrupted")

// Main runs a command: it parses the flags, picks the backend and calls run with a context that
// is cancelled by Ctrl-C or SIGTERM. Exit codes: 0 on success or --help, 2 for bad flags, 130 when
// interrupted, 1 for any other error, which is printed as "name: error".
func Main[O any](name string, parse func(args []string, stderr io.Writer) (O, error),
	run func(ctx context.Context, o O, b compute.Backend, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	o, err := parse(os.Args[1:], os.Stderr)
	code := 0
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		code = 2
	default:
		var b compute.Backend
		if b, err = backend.New(); err == nil {
			err = run(ctx, o, b, os.Stdout, os.Stderr)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			code = 1
			if errors.Is(err, ErrInterrupted) || errors.Is(err, context.Canceled) {
				code = 130
			}
		}
	}
	stop()
	os.Exit(code)
}

// Checks collects flag validation errors.
type Checks struct{ errs []error }

// Check records the error described by format and args unless ok.
func (c *Checks) Check(ok bool, format string, args ...any) {
	if !ok {
		c.errs = append(c.errs, fmt.Errorf(format, args...))
	}
}

// CheckSpacing records an error unless value names a DDIM spacing (flag is the flag's name).
func (c *Checks) CheckSpacing(flag, value string) {
	_, err := diffusion.ParseSpacing(value)
	c.Check(err == nil, "--%s=%q: use one of %v", flag, value, diffusion.Spacings)
}

// Err returns all recorded errors joined, or nil.
func (c *Checks) Err() error { return errors.Join(c.errs...) }

// NewFlagSet returns a flag set that reports errors to stderr and whose usage text starts with
// the command's one-line description.
func NewFlagSet(name, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./scripts/%s [flags]\n\n%s\n\nFlags:\n", name, description)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args and rejects positional arguments.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (all options are flags, see --help)", fs.Args())
	}
	return nil
}

// Alias registers old as a deprecated spelling of the flag name, already defined in fs: both set
// the same value. Errors and --help use the new name.
func Alias(fs *flag.FlagSet, old, name string) {
	fs.Var(fs.Lookup(name).Value, old, "deprecated spelling of --"+name)
}

// SpacingUsage describes the DDIM spacing flag --spacing (of train, sample and evaluate).
const SpacingUsage = "which DDIM timesteps: linspace (evenly spread from T-1 to 0) or trailing (from T-1 down in steps of T/steps)"

// samplers lists the --sampler values; samplerDPMSolver names DPM-Solver++(2M).
var samplers = []string{"ddim", "ddpm", samplerDPMSolver}

const samplerDPMSolver = "dpm++"

// SamplerFlags are the flags that choose and configure a sampler and the weights it uses.
type SamplerFlags struct {
	Sampler, Variance, Spacing string
	Steps                      int
	Eta                        float64
	Clip, RawWeights           bool
}

// StepsUsage describes --sample-steps, the sampler's step count (the same name in train, sample and
// evaluate; train's --steps counts training steps).
const StepsUsage = "DDIM or DPM-Solver++ steps: network calls per image (ddpm always takes all T steps)"

// Register adds --sampler, --sample-steps (alias --steps), --eta, --spacing, --variance, --clip and
// --raw-weights to fs.
func (s *SamplerFlags) Register(fs *flag.FlagSet) {
	fs.BoolVar(&s.RawWeights, "raw-weights", false, "sample from the weights of the last training step instead of their moving average (when the run kept one, see train --ema)")
	fs.StringVar(&s.Sampler, "sampler", "ddim", "sampler: ddim, ddpm or dpm++ (DPM-Solver++(2M), deterministic, on DDIM's timesteps)")
	fs.IntVar(&s.Steps, "sample-steps", diffusion.DefaultDDIMSteps, StepsUsage)
	Alias(fs, "steps", "sample-steps")
	fs.Float64Var(&s.Eta, "eta", 0, "DDIM eta in [0, 1]: 0 deterministic, 1 DDPM-like noise")
	fs.StringVar(&s.Spacing, "spacing", string(diffusion.DefaultSpacing), SpacingUsage)
	fs.StringVar(&s.Variance, "variance", diffusion.VarianceBeta, "DDPM step variance: beta or posterior")
	fs.BoolVar(&s.Clip, "clip", true, "clip the x0 estimate to [-1, 1] at every step (as diffusers does by default; --clip=false for the plain update)")
}

// Validate records the errors of out-of-range sampler flags.
func (s *SamplerFlags) Validate(c *Checks) {
	c.Check(slices.Contains(samplers, s.Sampler), "--sampler=%q: use one of %s", s.Sampler, strings.Join(samplers, ", "))
	c.Check(s.Sampler != samplerDPMSolver || s.Eta == 0, "--eta=%g: %s is deterministic (use ddim for eta > 0)", s.Eta, samplerDPMSolver)
	c.Check(s.Steps >= 1, "--sample-steps=%d: must be >= 1", s.Steps)
	c.Check(s.Eta >= 0 && s.Eta <= 1 && !math.IsNaN(s.Eta), "--eta=%g: must lie in [0, 1]", s.Eta)
	c.CheckSpacing("spacing", s.Spacing)
	c.Check(s.Variance == diffusion.VarianceBeta || s.Variance == diffusion.VariancePosterior,
		"--variance=%q: use %s or %s", s.Variance, diffusion.VarianceBeta, diffusion.VariancePosterior)
}

// LoadModel loads a checkpoint file or run folder with the weights the flags choose.
func (s *SamplerFlags) LoadModel(path string) (*experiment.Model, error) {
	if s.RawWeights {
		return experiment.LoadRawModel(path)
	}
	return experiment.LoadModel(path)
}

// Build returns the sampler the flags describe, for a model of T diffusion steps.
func (s *SamplerFlags) Build(T int) (diffusion.Sampler, error) {
	if s.Sampler == "ddpm" {
		return diffusion.DDPM{Variance: s.Variance, Clip: s.Clip}, nil
	}
	if s.Steps > T {
		return nil, fmt.Errorf("--sample-steps=%d: more steps than the model's T=%d", s.Steps, T)
	}
	if s.Sampler == samplerDPMSolver {
		return diffusion.DPMSolver{Steps: s.Steps, Clip: s.Clip, Spacing: diffusion.Spacing(s.Spacing)}, nil
	}
	return diffusion.DDIM{Steps: s.Steps, Eta: s.Eta, Clip: s.Clip, Spacing: diffusion.Spacing(s.Spacing)}, nil
}

// GuidanceFlags choose what a class-conditional model (train --classes) draws: --digit and
// --guidance, the classifier-free guidance scale.
type GuidanceFlags struct {
	Digit    string
	Guidance float64
}

// Digit values of GuidanceFlags besides 0-9.
const (
	DigitAll  = "all"  // Each grid column a digit: labels 0, 1, ..., 9, 0, ...
	DigitNone = "none" // No label: unconditional samples.
)

// Register adds --digit and --guidance to fs.
func (g *GuidanceFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&g.Digit, "digit", "", "with a class-conditional model (train --classes): the digit to draw, 0-9; "+DigitAll+
		" for the ten digits in turn, one per grid column (the default for such a model); "+DigitNone+" for no label")
	fs.Float64Var(&g.Guidance, "guidance", experiment.DefaultGuidance, "classifier-free guidance scale w in [0, 100] for --digit: "+
		"0 ignores the digit, 1 is plain conditional sampling, larger draws the digit more clearly and with less variety")
}

// Validate records the errors of out-of-range --digit and --guidance.
func (g *GuidanceFlags) Validate(c *Checks) {
	ok := g.Digit == "" || g.Digit == DigitAll || g.Digit == DigitNone || (len(g.Digit) == 1 && g.Digit[0] >= '0' && g.Digit[0] <= '9')
	c.Check(ok, "--digit=%q: use a digit 0-9, %s or %s", g.Digit, DigitAll, DigitNone)
	c.Check(g.Guidance >= 0 && g.Guidance <= 100, "--guidance=%g: must lie in [0, 100]", g.Guidance)
}

// Conditioning returns the labels of n images and the guidance scale for a model of classes classes
// (0: unconditional, which takes no --digit).
func (g *GuidanceFlags) Conditioning(n, classes int) (labels []int, w float64, err error) {
	switch {
	case classes == 0 && g.Digit != "" && g.Digit != DigitNone:
		return nil, 0, fmt.Errorf("--digit=%s: the checkpoint's model is unconditional; train a class-conditional one with train --classes", g.Digit)
	case classes == 0 || g.Digit == DigitNone:
		return nil, 0, nil
	case g.Digit == "" || g.Digit == DigitAll:
		return experiment.Labels(n, classes), g.Guidance, nil
	}
	d := int(g.Digit[0] - '0')
	if d >= classes {
		return nil, 0, fmt.Errorf("--digit=%d: the model knows %d classes", d, classes)
	}
	labels = make([]int, n)
	for i := range labels {
		labels[i] = d
	}
	return labels, g.Guidance, nil
}
