package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
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
	writeComparison(&buf, "go", rows, py)
	out := buf.String()
	for _, want := range []string{"PyTorch 1.13.1, 2 threads", "Go/PyTorch", "45.0", "0.20", "250.0", "0.08", "n/a"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestParseFlagsPyTorch(t *testing.T) {
	o, err := parseFlags([]string{"--pytorch", "/usr/bin/python3"}, &bytes.Buffer{})
	if err != nil || o.pytorch != "/usr/bin/python3" {
		t.Errorf("--pytorch: %+v, %v", o, err)
	}
	if o, _ := parseFlags(nil, &bytes.Buffer{}); o.pytorch != "" {
		t.Errorf("default --pytorch = %q, want off", o.pytorch)
	}
}
