package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// executed is a small executed notebook as nbconvert writes it: a clean cell with a PNG, a cell
// whose Go program panicked (GoNB prints the trace and "exit status 2" to stderr), and a cell with
// a compile error (an "error" output).
const executed = `{
 "nbformat": 4, "nbformat_minor": 5, "metadata": {},
 "cells": [
  {"cell_type": "markdown", "metadata": {}, "source": ["# Title"]},
  {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["grid"],
    "execution": {"iopub.execute_input": "2026-11-28T14:00:00.000000Z", "shell.execute_reply": "2026-11-28T14:00:07.500000Z"}},
   "source": ["%%\n", "kernel.ShowImage(img)"],
   "outputs": [
    {"output_type": "stream", "name": "stderr", "text": ["go: added github.com/gomlx/gomlx v0.28.2\n"]},
    {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo="}},
    {"output_type": "display_data", "metadata": {}, "data": {"text/html": ["<img src=\"data:image/gif;base64,R0lG\">"]}}
   ]},
  {"cell_type": "code", "execution_count": 2, "metadata": {"tags": ["boom"]}, "source": "%%\npanic(\"boom\")",
   "outputs": [{"output_type": "stream", "name": "stderr",
     "text": "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\nexit status 2\n"}]},
  {"cell_type": "code", "execution_count": 3, "metadata": {}, "source": "%%\nx := ",
   "outputs": [{"output_type": "error", "ename": "ERROR", "evalue": "failed to run \"go build\"", "traceback": []}]},
  {"cell_type": "code", "execution_count": null, "metadata": {}, "source": "%%\nfmt.Println(1)", "outputs": []}
 ]
}`

func TestCheck(t *testing.T) {
	reqs := []requirement{
		{Notebook: "nb.ipynb", Tag: "grid", Kinds: []string{"png", "gif"}},
		{Notebook: "nb.ipynb", Tag: "grid", Kinds: []string{"svg"}},
		{Notebook: "nb.ipynb", Tag: "missing", Kinds: []string{"png"}},
		{Notebook: "other.ipynb", Tag: "grid", Kinds: []string{"svg"}},
	}
	r := check("nb.ipynb", []byte(executed), reqs)
	want := []string{
		`cell 3 (%%): a program or command failed: "exit status 2"`,
		`cell 4 (%%): error output: ERROR: failed to run "go build"`,
		`cell 5 (%%): not executed`,
		`cell tagged "grid" shows no svg output`,
		`no code cell tagged "missing"`,
	}
	if strings.Join(r.Problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(r.Problems, "\n"), strings.Join(want, "\n"))
	}
	if r.Cells != 4 || r.Images != 1 {
		t.Errorf("cells %d, images %d; want 4, 1", r.Cells, r.Images)
	}
	if len(r.Timings) != 1 || r.Timings[0].Duration.Seconds() != 7.5 {
		t.Errorf("timings %+v, want one of 7.5s", r.Timings)
	}
}

func TestPanicWithoutExitStatus(t *testing.T) {
	nb := `{"nbformat": 4, "cells": [{"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "x",
	  "outputs": [{"output_type": "stream", "name": "stderr", "text": "panic: runtime error: index out of range\n"}]}]}`
	r := check("a.ipynb", []byte(nb), nil)
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "a Go panic") {
		t.Errorf("problems %q, want one Go panic", r.Problems)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	good := `{"nbformat": 4, "cells": [{"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["loss"]}, "source": "x",
	  "outputs": [{"output_type": "display_data", "data": {"text/html": "<div><svg></svg></div>"}}]}]}`
	path := filepath.Join(dir, "good.ipynb")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"-require", "good.ipynb:loss=svg", path}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "good.ipynb: ok") {
		t.Errorf("output %q", out.String())
	}
	out.Reset()
	if err := run([]string{"-require", "good.ipynb:loss=png", "-require", "gone.ipynb:x=png", path}, &out, &errOut); err == nil {
		t.Errorf("run passed with a missing PNG and a missing notebook:\n%s", out.String())
	}
	if _, err := parseRequirement("nb.ipynb:tag=jpeg"); err == nil {
		t.Error("unknown kind accepted")
	}
}
