package main

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"strings"
	"testing"

	"github.com/godiffusion/godiffusion/layers"
)

func TestForwardMACsByHand(t *testing.T) {
	tests := []struct {
		name string
		cfg  layers.UNetConfig
		want int64
	}{
		{
			// ImageSize 2 (P = 4 pixels), BaseWidth 3 (stem 2, widths [3]), TimeDim 4 (time MLP 16), no attention.
			//   stem 7x7 1->2:            4*49*1*2                     =  392
			//   time MLP 4->16->16:       4*16 + 16*16                 =  320
			//   down resnet 2->3:         4*(9*2*3 + 9*3*3 + 2*3) + 16*3 =  612
			//   down resnet 3->3:         4*(81 + 81 + 9) + 48         =  732
			//   middle 2 resnets 3->3:    2*732                        = 1464
			//   up resnet (3+3)->3:       4*(9*6*3 + 81 + 6*3) + 48    = 1092
			//   up resnet 3->3:                                          732
			//   final resnet 3->3:                                       732
			//   output 1x1 3->1:          4*3                          =   12
			// total 6088.
			name: "one level",
			cfg:  layers.UNetConfig{ImageSize: 2, BaseWidth: 3, WidthMults: []int{1}, Groups: 1, Heads: 1, TimeDim: 4},
			want: 6088,
		},
		{
			// ImageSize 4, BaseWidth 3 (stem 2, widths [3, 6]), TimeDim 4 (time MLP 16), attention at 2x2 only.
			//   stem 7x7 1->2:            16*49*2                          = 1568
			//   time MLP:                                                     320
			//   level 0 (16 px) resnet 2->3: 16*(54+81+6) + 48             = 2304
			//                   resnet 3->3: 16*171 + 48                   = 2784
			//   down 4x4 s2 3->3 (4 px): 4*16*9                            =  576
			//   level 1 (4 px) resnet 3->6: 4*(162+324+18) + 96            = 2112
			//                  resnet 6->6: 4*(324+324+36) + 96            = 2832
			//                  attention C=6, N=4: 4*6*18 + 2*4*4*6 + 4*36 =  768
			//   middle 2 resnets 6->6:                                       5664
			//   up level 1 resnet (6+6)->6: 4*(648+324+72) + 96            = 4272
			//              resnet 6->6:                                      2832
			//              attention:                                          768
			//              transposed 4x4 s2 6->6 (16 px out): 16*16*36/4  = 2304
			//   up level 0 resnet (3+6)->3: 16*(243+81+27) + 48            = 5664
			//              resnet 3->3:                                      2784
			//   final resnet 3->3:                                           2784
			//   output 1x1 3->1: 16*3                                      =   48
			// total 40384.
			name: "two levels with attention",
			cfg: layers.UNetConfig{ImageSize: 4, BaseWidth: 3, WidthMults: []int{1, 2}, AttentionResolutions: []int{2},
				Groups: 1, Heads: 1, TimeDim: 4},
			want: 40384,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ForwardMACs(tt.cfg); got != tt.want {
				t.Errorf("ForwardMACs = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestForwardMACsPresets(t *testing.T) {
	for _, p := range []struct {
		name  string
		cfg   layers.UNetConfig
		wantG float64 // Platform notes: ~0.69 G MACs/image (tutorial), ~0.13 G (cpu).
	}{
		{"tutorial", layers.Tutorial(), 0.69},
		{"cpu", layers.CPU(), 0.13},
	} {
		got := float64(ForwardMACs(p.cfg)) / 1e9
		t.Logf("%s: %d forward MACs/image (%.4f G)", p.name, ForwardMACs(p.cfg), got)
		if math.Abs(got-p.wantG) > 0.15*p.wantG {
			t.Errorf("%s: %.4f G MACs/image, want %.2f G ± 15%%", p.name, got, p.wantG)
		}
	}
	t.Logf("tiny: %d forward MACs/image", ForwardMACs(layers.Tiny()))
}

func TestParseFlags(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "")
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if strings.Join(o.presets, ",") != "cpu" || len(o.batches) != 2 || o.batches[0] != 16 || o.batches[1] != 64 || o.steps != 3 {
		t.Errorf("defaults = %+v", o)
	}
	o, err = parseFlags([]string{"--presets", "tiny, cpu", "--batches", "2,8", "--steps", "5"}, &bytes.Buffer{})
	if err != nil || strings.Join(o.presets, ",") != "tiny,cpu" || o.batches[0] != 2 || o.batches[1] != 8 || o.steps != 5 {
		t.Errorf("parse = %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"--help"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: err = %v, want flag.ErrHelp", err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--presets", "huge"}, `unknown preset "huge"`},
		{[]string{"--presets", ","}, "at least one preset"},
		{[]string{"--batches", "0"}, `"0" is not a batch size`},
		{[]string{"--batches", "x,4"}, `"x" is not a batch size`},
		{[]string{"--steps", "0"}, "--steps=0"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		_, err := parseFlags(bad.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want containing %q", bad.args, err, bad.want)
		}
	}
}
