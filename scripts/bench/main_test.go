package main

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"

	"github.com/godiffusion/godiffusion/backend"
)

func TestParsePyTorchLines(t *testing.T) {
	cpu64 := pytorchResult{preset: "cpu", batch: 64, threads: 2, params: 3199893, trainIPS: 45.1, sampleIPS: 250.3, torch: "1.13.1"}
	tests := []struct {
		name    string
		out     string
		want    []pytorchResult
		wantErr string
	}{
		{
			name: "one line",
			out:  "pytorch preset=cpu batch=64 train_img_s=45.1 sample_img_s=250.3 params=3199893 threads=2 torch=1.13.1\n",
			want: []pytorchResult{cpu64},
		},
		{
			name: "several lines, other lines and unknown keys ignored",
			out: "some warning\n" +
				"pytorch preset=cpu batch=64 train_img_s=45.1 sample_img_s=250.3 params=3199893 threads=2 torch=1.13.1 extra=x\n\n" +
				"  pytorch preset=tiny batch=1 train_img_s=12 sample_img_s=300.5  \n" +
				"pytorchish preset=cpu\n",
			want: []pytorchResult{cpu64, {preset: "tiny", batch: 1, trainIPS: 12, sampleIPS: 300.5}},
		},
		{name: "empty", out: "", wantErr: "no \"pytorch ...\" result lines"},
		{name: "no result lines", out: "Traceback\n", wantErr: "no \"pytorch ...\" result lines"},
		{name: "bad field", out: "pytorch preset=cpu batch 64\n", wantErr: `field "batch" is not key=value`},
		{name: "bad batch", out: "pytorch preset=cpu batch=x train_img_s=1 sample_img_s=1\n", wantErr: "batch:"},
		{name: "bad rate", out: "pytorch preset=cpu batch=1 train_img_s=fast sample_img_s=1\n", wantErr: "train_img_s:"},
		{name: "missing sample", out: "pytorch preset=cpu batch=1 train_img_s=1\n", wantErr: "needs preset"},
		{name: "missing preset", out: "pytorch batch=1 train_img_s=1 sample_img_s=1\n", wantErr: "needs preset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePyTorchLines(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestWriteComparison(t *testing.T) {
	rows := []result{{preset: "cpu", batch: 64, trainIPS: 9, sampleIPS: 20}, {preset: "cpu", batch: 1, trainIPS: 3, sampleIPS: 5}}
	py := []pytorchResult{{preset: "cpu", batch: 64, trainIPS: 45, sampleIPS: 250, threads: 2, torch: "1.13.1"}}
	var buf bytes.Buffer
	writeComparison(&buf, "AVX-512 kernels allowed", rows, py)
	out := buf.String()
	for _, want := range []string{"PyTorch 1.13.1, 2 threads", "Go/PyTorch", "45.0", "0.20", "250.0", "0.08", "n/a"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestParseFlagsPyTorch(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "")
	o, err := parseFlags([]string{"--pytorch", "/usr/bin/python3"}, &bytes.Buffer{})
	if err != nil || o.pytorch != "/usr/bin/python3" {
		t.Errorf("--pytorch: %+v, %v", o, err)
	}
	if o, _ := parseFlags(nil, &bytes.Buffer{}); o.pytorch != "" {
		t.Errorf("default --pytorch = %q, want off", o.pytorch)
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "")
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.presets, []string{"cpu"}) || !slices.Equal(o.batches, []int{16, 64}) || !slices.Equal(o.parallels, []int{0}) || o.steps != 3 {
		t.Errorf("defaults: presets %v batches %v parallel %v steps %d, want [cpu] [16 64] [0] 3", o.presets, o.batches, o.parallels, o.steps)
	}
	if !slices.Equal(o.engines, backend.Installed()) || o.enginesFromEnv {
		t.Errorf("default engines %v (from env %v), want backend.Installed() = %v", o.engines, o.enginesFromEnv, backend.Installed())
	}
}

func TestParseFlagsEngines(t *testing.T) {
	installed := backend.Installed()
	tests := []struct {
		name, env string
		args      []string
		want      []string
		fromEnv   bool
		wantErr   []string // substrings of the error; nil: no error.
	}{
		{name: "default: installed", want: installed},
		{name: "default with GOMLX_BACKEND: that one", env: "go:ops_sequential", want: []string{"go:ops_sequential"}, fromEnv: true},
		{name: "flag beats GOMLX_BACKEND", env: "onnx:cpu", args: []string{"--engines", "go"}, want: []string{"go"}},
		{name: "empty flag: installed, even with GOMLX_BACKEND", env: "go", args: []string{"--engines="}, want: installed},
		{name: "list", args: []string{"--engines", " go ; go:ops_sequential;onnx:cpu,intra_op_num_threads=1 "}, want: []string{"go", "go:ops_sequential", "onnx:cpu,intra_op_num_threads=1"}},
		{name: "other engines are checked at run time", args: []string{"--engines", "onnx:nosuchprovider;xla:cuda"}, want: []string{"onnx:nosuchprovider", "xla:cuda"}},
		{name: "unknown engine", args: []string{"--engines", "go;tensorflow:cpu"},
			wantErr: []string{`--engines="go;tensorflow:cpu"`, `unknown engine "tensorflow:cpu"`, "onnx", "xla", "--engines '" + strings.Join(installed, ";") + "'"}},
		{name: "bad Go option", args: []string{"--engines", "go:turbo"},
			wantErr: []string{`--engines="go:turbo"`, `engine "go:turbo"`, "turbo", "--engines '" + strings.Join(installed, ";") + "'"}},
		{name: "repeated", args: []string{"--engines", "go;go"}, wantErr: []string{`"go" is given twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMLX_BACKEND", tt.env)
			o, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, engines %v", o.engines)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.engines, tt.want) || o.enginesFromEnv != tt.fromEnv {
				t.Errorf("engines %q (from env %v), want %q (%v)", o.engines, o.enginesFromEnv, tt.want, tt.fromEnv)
			}
		})
	}
}

func TestOpenEngines(t *testing.T) {
	cliBackend := func(t *testing.T) compute.Backend {
		b, err := backend.NewWithConfig("go")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("from GOMLX_BACKEND: cli.Main's backend", func(t *testing.T) {
		b := cliBackend(t)
		engines, err := openEngines(&options{engines: []string{"go"}, enginesFromEnv: true}, b)
		if err != nil || len(engines) != 1 || engines[0].b != b || engines[0].config != "go" || b.IsFinalized() {
			t.Errorf("got %+v, %v; want cli.Main's backend, not finalized", engines, err)
		}
	})
	t.Run("from --engines: new backends", func(t *testing.T) {
		b := cliBackend(t)
		engines, err := openEngines(&options{engines: []string{"go", "go:ops_sequential"}}, b)
		if err != nil {
			t.Fatal(err)
		}
		if !b.IsFinalized() {
			t.Error("cli.Main's unused backend not finalized")
		}
		if len(engines) != 2 || engines[0].config != "go" || engines[1].config != "go:ops_sequential" || backend.Kind(engines[1].b) != backend.Go {
			t.Errorf("engines %+v", engines)
		}
		for _, e := range engines {
			e.b.Finalize()
		}
	})
	t.Run("an engine fails", func(t *testing.T) {
		_, err := openEngines(&options{engines: []string{"go", "onnx:nosuchprovider"}}, cliBackend(t))
		if err == nil || !strings.Contains(err.Error(), `engine "onnx:nosuchprovider"`) || !strings.Contains(err.Error(), "--engines "+installedFlag()) {
			t.Errorf("err = %v, want naming the engine, --engines and the installed engines", err)
		}
	})
}

func TestEngineParallels(t *testing.T) {
	for _, tt := range []struct {
		parallels []int
		def       int
		want      []int
	}{
		{[]int{0}, 2, []int{2}},
		{[]int{1, 0}, 2, []int{1, 2}},
		{[]int{1, 0}, 1, []int{1}},
		{[]int{0, 4, 4, 1}, 1, []int{1, 4}},
	} {
		if got := engineParallels(tt.parallels, tt.def); !slices.Equal(got, tt.want) {
			t.Errorf("engineParallels(%v, %d) = %v, want %v", tt.parallels, tt.def, got, tt.want)
		}
	}
}

func TestPyTorchEnv(t *testing.T) {
	environ := []string{"PATH=/usr/bin", "OPENBLAS_CORETYPE=Haswell", "HOME=/root", "OPENBLAS_L2_SIZE=2097152",
		"OPENBLAS_NUM_THREADS=2", "GOMLX_BACKEND=onnx:cpu", "EMPTY="}
	kept := []string{"PATH=/usr/bin", "HOME=/root", "OPENBLAS_NUM_THREADS=2", "GOMLX_BACKEND=onnx:cpu", "EMPTY="}
	orig := slices.Clone(environ)
	if got, want := pytorchEnv(environ, true), append(slices.Clone(kept), "ATEN_CPU_CAPABILITY=avx512"); !slices.Equal(got, want) {
		t.Errorf("AVX-512 CPU:\n got %q\nwant %q", got, want)
	}
	if got := pytorchEnv(environ, false); !slices.Equal(got, kept) {
		t.Errorf("CPU without AVX-512:\n got %q\nwant %q", got, kept)
	}
	if !slices.Equal(environ, orig) {
		t.Errorf("pytorchEnv changed its input: %q", environ)
	}
	user := []string{"ATEN_CPU_CAPABILITY=avx2", "OPENBLAS_CORETYPE=Haswell", "PATH=/bin"}
	if got, want := pytorchEnv(user, true), []string{"ATEN_CPU_CAPABILITY=avx2", "PATH=/bin"}; !slices.Equal(got, want) {
		t.Errorf("the user's ATEN_CPU_CAPABILITY:\n got %q\nwant %q", got, want)
	}
	if got := pytorchEnv(nil, true); !slices.Equal(got, []string{"ATEN_CPU_CAPABILITY=avx512"}) {
		t.Errorf("empty environment: %q", got)
	}

	for _, tt := range []struct {
		env  []string
		want string
	}{
		{pytorchEnv(environ, true), "AVX-512 kernels allowed: ATEN_CPU_CAPABILITY=avx512, without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE"},
		{pytorchEnv(user, true), "ATEN_CPU_CAPABILITY=avx2, without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE"},
		{pytorchEnv(environ, false), "no AVX-512 on this CPU, without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE"},
	} {
		if got := pytorchEnvNote(tt.env); got != tt.want {
			t.Errorf("pytorchEnvNote(%q) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

// cells returns the fields of the line of out whose first field is first and whose next fields
// start with rest (nil if none).
func cells(out string, first string, rest ...string) []string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > len(rest) && f[0] == first && slices.Equal(f[1:1+len(rest)], rest) {
			return f
		}
	}
	return nil
}

func TestWriteTableEngines(t *testing.T) {
	rows := []result{
		{engine: "onnx:cpu", preset: "cpu", batch: 16, parallel: 1, trainIPS: 70, sampleIPS: 300, trainGFLOPS: 1.5, sampleGFLOPS: 2.25, peakHeap: 3 << 20, vmHWM: 100 << 20},
		{engine: "go:ops_sequential", preset: "cpu", batch: 16, parallel: 2, trainIPS: 34, sampleIPS: 78, vmHWM: -1},
	}
	var buf bytes.Buffer
	writeTable(&buf, rows)
	out := buf.String()
	if h := cells(out, "engine"); !slices.Equal(h[:4], []string{"engine", "preset", "batch", "parallel"}) {
		t.Errorf("header %q", h)
	}
	if got, want := cells(out, "onnx:cpu"), []string{"onnx:cpu", "cpu", "16", "1", "70.0", "300.0", "1.50", "2.25", "3", "100"}; !slices.Equal(got, want) {
		t.Errorf("onnx row %q, want %q\n%s", got, want, out)
	}
	if got := cells(out, "go:ops_sequential"); len(got) != 10 || got[3] != "2" || got[4] != "34.0" || got[9] != "n/a" {
		t.Errorf("go row %q\n%s", got, out)
	}
}

func TestWriteComparisonEngines(t *testing.T) {
	rows := []result{
		{engine: "onnx:cpu", preset: "cpu", batch: 16, parallel: 1, trainIPS: 60, sampleIPS: 300},
		{engine: "onnx:cpu", preset: "cpu", batch: 64, parallel: 1, trainIPS: 90, sampleIPS: 250},
		{engine: "go", preset: "cpu", batch: 16, parallel: 2, trainIPS: 30, sampleIPS: 80},
		{engine: "go", preset: "cpu", batch: 64, parallel: 2, trainIPS: 36, sampleIPS: 100},
		{engine: "go", preset: "tiny", batch: 64, parallel: 2, trainIPS: 500, sampleIPS: 900}, // No PyTorch result.
	}
	py := []pytorchResult{
		{preset: "cpu", batch: 16, trainIPS: 60, sampleIPS: 200, threads: 2, torch: "1.13.1"},
		{preset: "cpu", batch: 64, trainIPS: 75, sampleIPS: 250, threads: 2, torch: "1.13.1"},
	}
	var buf bytes.Buffer
	writeComparison(&buf, "AVX-512 kernels allowed", rows, py)
	out := buf.String()
	if !strings.Contains(out, "PyTorch 1.13.1, 2 threads (AVX-512 kernels allowed)") {
		t.Errorf("header lacks the PyTorch version, threads and kernels:\n%s", out)
	}
	for _, want := range [][]string{
		{"onnx:cpu", "cpu", "16", "1", "60.0", "60.0", "1.00", "300.0", "200.0", "1.50"},
		{"onnx:cpu", "cpu", "64", "1", "90.0", "75.0", "1.20", "250.0", "250.0", "1.00"},
		{"go", "cpu", "16", "2", "30.0", "60.0", "0.50", "80.0", "200.0", "0.40"},
		{"go", "cpu", "64", "2", "36.0", "75.0", "0.48", "100.0", "250.0", "0.40"},
		{"go", "tiny", "64", "2", "500.0", "n/a", "n/a", "900.0", "n/a", "n/a"},
	} {
		if got := cells(out, want[0], want[1:4]...); !slices.Equal(got, want) {
			t.Errorf("row %q, want %q\n%s", got, want, out)
		}
	}
	for _, want := range []string{
		"best vs PyTorch, onnx:cpu: train 1.20x (cpu batch 64 parallel 1), sample 1.50x (cpu batch 16 parallel 1)\n",
		"best vs PyTorch, go: train 0.50x (cpu batch 16 parallel 2), sample 0.40x (cpu batch 16 parallel 2)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	writeComparison(&buf, "", rows[4:], py)
	if !strings.Contains(buf.String(), "best vs PyTorch, go: n/a") {
		t.Errorf("engine without PyTorch results:\n%s", buf.String())
	}
}
