// Command nbcheck checks notebooks executed headless (jupyter nbconvert --execute): Jupyter
// only fails such a run for compile errors and timeouts, while a Go panic, os.Exit(n) or a
// failing shell command in a GoNB cell just prints "exit status N" to the cell's output. nbcheck
// reads the executed .ipynb files and fails on
//
//   - any output of type "error" (GoNB compile errors, special-command failures);
//   - any text output that contains "exit status N", a Go panic ("panic: ", "fatal error: ",
//     a goroutine trace) or a Go runtime error;
//   - any code cell that was not executed;
//
// and checks that required outputs are present: -require NOTEBOOK:TAG=KINDS says that the cell of
// NOTEBOOK (base name) tagged TAG (cell metadata "tags", as Jupyter's tag editor writes them) must
// have an output of each of the "+"-separated KINDS: png, svg, gif, html, text.
//
//	go run ./scripts/nbcheck -require tutorial.ipynb:data-sample=png out/notebooks/*.ipynb
//
// It prints, per notebook, the time each slow cell took (from the timing nbclient records).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// requirement says that the cell tagged Tag of notebook Notebook must show outputs of Kinds.
type requirement struct {
	Notebook, Tag string
	Kinds         []string
}

// Kinds of outputs a requirement can ask for.
var knownKinds = map[string]bool{"png": true, "svg": true, "gif": true, "html": true, "text": true}

func parseRequirement(s string) (requirement, error) {
	nb, rest, ok := strings.Cut(s, ":")
	tag, kinds, ok2 := strings.Cut(rest, "=")
	if !ok || !ok2 || nb == "" || tag == "" || kinds == "" {
		return requirement{}, fmt.Errorf("requirement %q: want NOTEBOOK:TAG=KIND[+KIND...]", s)
	}
	r := requirement{Notebook: nb, Tag: tag}
	for _, k := range strings.Split(kinds, "+") {
		if !knownKinds[k] {
			return requirement{}, fmt.Errorf("requirement %q: unknown kind %q (known: png, svg, gif, html, text)", s, k)
		}
		r.Kinds = append(r.Kinds, k)
	}
	return r, nil
}

// notebook is the part of the .ipynb format nbcheck reads.
type notebook struct {
	NBFormat int    `json:"nbformat"`
	Cells    []cell `json:"cells"`
}

type cell struct {
	CellType       string          `json:"cell_type"`
	Source         multiline       `json:"source"`
	ExecutionCount *int            `json:"execution_count"`
	Outputs        []output        `json:"outputs"`
	Metadata       json.RawMessage `json:"metadata"`
}

type cellMetadata struct {
	Tags      []string          `json:"tags"`
	Execution map[string]string `json:"execution"`
}

type output struct {
	OutputType string               `json:"output_type"`
	Name       string               `json:"name"` // stdout or stderr, for streams.
	Text       multiline            `json:"text"`
	Data       map[string]multiline `json:"data"`
	EName      string               `json:"ename"`
	EValue     string               `json:"evalue"`
	Traceback  []string             `json:"traceback"`
}

// multiline is a notebook string: either one string or a list of lines.
type multiline string

func (m *multiline) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*m = multiline(s)
		return nil
	}
	var lines []string
	if err := json.Unmarshal(b, &lines); err != nil {
		// Some outputs (e.g. application/json) hold objects: keep their JSON text.
		*m = multiline(b)
		return nil //nolint:nilerr // Not a string: kept verbatim.
	}
	*m = multiline(strings.Join(lines, ""))
	return nil
}

// failurePatterns are texts that mean a cell failed even though Jupyter did not notice.
var failurePatterns = []struct {
	re   *regexp.Regexp
	what string
}{
	{regexp.MustCompile(`exit status \d+`), "a program or command failed"},
	{regexp.MustCompile(`(?m)^panic: `), "a Go panic"},
	{regexp.MustCompile(`(?m)^fatal error: `), "a fatal Go runtime error"},
	{regexp.MustCompile(`(?m)^goroutine \d+ \[`), "a goroutine trace"},
	{regexp.MustCompile(`runtime error: `), "a Go runtime error"},
}

// report is the result of checking one notebook.
type report struct {
	Problems []string
	Cells    int
	Images   int
	Timings  []cellTiming
}

type cellTiming struct {
	Cell     int
	Duration time.Duration
	Head     string
}

// kindsOf returns the kinds of content an output shows.
func kindsOf(o output) map[string]bool {
	k := map[string]bool{}
	if o.OutputType == "stream" && strings.TrimSpace(string(o.Text)) != "" {
		k["text"] = true
	}
	for mime, v := range o.Data {
		s := string(v)
		switch {
		case mime == "image/png":
			k["png"] = true
		case mime == "image/gif":
			k["gif"] = true
		case mime == "image/svg+xml":
			k["svg"] = true
		case mime == "text/html":
			k["html"] = true
			if strings.Contains(s, "<svg") {
				k["svg"] = true
			}
			if strings.Contains(s, "data:image/gif;base64,") {
				k["gif"] = true
			}
			if strings.Contains(s, "data:image/png;base64,") {
				k["png"] = true
			}
		case mime == "text/plain":
			if strings.TrimSpace(s) != "" {
				k["text"] = true
			}
		}
	}
	return k
}

// textOf returns the text of an output that failure patterns are searched in.
func textOf(o output) string {
	switch o.OutputType {
	case "stream":
		return string(o.Text)
	case "execute_result", "display_data":
		return string(o.Data["text/plain"])
	}
	return ""
}

func firstLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// excerpt returns the line of text around position i.
func excerpt(text string, i int) string {
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		end = len(text)
	} else {
		end += i
	}
	return firstLine(text[start:end], 160)
}

// check checks one notebook's content against the requirements that name it.
func check(name string, data []byte, reqs []requirement) report {
	var r report
	var nb notebook
	if err := json.Unmarshal(data, &nb); err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("not a notebook: %v", err))
		return r
	}
	if nb.NBFormat != 4 {
		r.Problems = append(r.Problems, fmt.Sprintf("nbformat %d, want 4", nb.NBFormat))
	}
	tagged := map[string][]map[string]bool{} // tag -> kinds shown by each cell with that tag
	for i, c := range nb.Cells {
		if c.CellType != "code" {
			continue
		}
		r.Cells++
		where := fmt.Sprintf("cell %d (%s)", i+1, firstLine(string(c.Source), 60))
		var md cellMetadata
		if len(c.Metadata) > 0 {
			_ = json.Unmarshal(c.Metadata, &md)
		}
		if c.ExecutionCount == nil && strings.TrimSpace(string(c.Source)) != "" {
			r.Problems = append(r.Problems, where+": not executed")
		}
		if d, ok := cellDuration(md.Execution); ok {
			r.Timings = append(r.Timings, cellTiming{Cell: i + 1, Duration: d, Head: firstLine(string(c.Source), 60)})
		}
		kinds := map[string]bool{}
		for _, o := range c.Outputs {
			if o.OutputType == "error" {
				msg := o.EName + ": " + firstLine(o.EValue, 300)
				if strings.TrimSpace(o.EValue) == "" && len(o.Traceback) > 0 {
					msg = o.EName + ": " + firstLine(strings.Join(o.Traceback, "\n"), 300)
				}
				r.Problems = append(r.Problems, where+": error output: "+msg)
				continue
			}
			text := textOf(o)
			for _, p := range failurePatterns {
				if loc := p.re.FindStringIndex(text); loc != nil {
					r.Problems = append(r.Problems, fmt.Sprintf("%s: %s: %q", where, p.what, excerpt(text, loc[0])))
					break
				}
			}
			for k := range kindsOf(o) {
				kinds[k] = true
			}
		}
		if kinds["png"] || kinds["gif"] || kinds["svg"] {
			r.Images++
		}
		for _, t := range md.Tags {
			tagged[t] = append(tagged[t], kinds)
		}
	}
	for _, req := range reqs {
		if req.Notebook != name {
			continue
		}
		cells, ok := tagged[req.Tag]
		if !ok {
			r.Problems = append(r.Problems, fmt.Sprintf("no code cell tagged %q", req.Tag))
			continue
		}
		for _, k := range req.Kinds {
			found := false
			for _, kinds := range cells {
				found = found || kinds[k]
			}
			if !found {
				r.Problems = append(r.Problems, fmt.Sprintf("cell tagged %q shows no %s output", req.Tag, k))
			}
		}
	}
	return r
}

// cellDuration reads the execution time nbclient records in a cell's metadata.
func cellDuration(m map[string]string) (time.Duration, bool) {
	start, ok1 := m["iopub.execute_input"]
	end, ok2 := m["shell.execute_reply"]
	if !ok1 || !ok2 {
		return 0, false
	}
	t0, err0 := time.Parse(time.RFC3339Nano, start)
	t1, err1 := time.Parse(time.RFC3339Nano, end)
	if err0 != nil || err1 != nil {
		return 0, false
	}
	return t1.Sub(t0), true
}

type requirementList []requirement

func (l *requirementList) String() string { return fmt.Sprint(*l) }
func (l *requirementList) Set(s string) error {
	r, err := parseRequirement(s)
	if err != nil {
		return err
	}
	*l = append(*l, r)
	return nil
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nbcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var reqs requirementList
	fs.Var(&reqs, "require", "NOTEBOOK:TAG=KIND[+KIND...]: the cell tagged TAG of NOTEBOOK must show these kinds of output (png, svg, gif, html, text); repeatable")
	slow := fs.Duration("slow", 5*time.Second, "list the cells that took longer than this")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./scripts/nbcheck [flags] EXECUTED.ipynb...\n\nChecks notebooks executed with jupyter nbconvert --execute for failed cells and missing outputs.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no notebook given")
	}
	seen := map[string]bool{}
	failed := 0
	for _, path := range fs.Args() {
		name := filepath.Base(path)
		seen[name] = true
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r := check(name, data, reqs)
		var total time.Duration
		for _, t := range r.Timings {
			total += t.Duration
		}
		status := "ok"
		if len(r.Problems) > 0 {
			status = "FAILED"
			failed++
		}
		fmt.Fprintf(stdout, "nbcheck: %s: %s: %d code cells, %d with pictures, cells ran %s\n", path, status, r.Cells, r.Images, total.Round(time.Second))
		sort.SliceStable(r.Timings, func(i, j int) bool { return r.Timings[i].Duration > r.Timings[j].Duration })
		for _, t := range r.Timings {
			if t.Duration >= *slow {
				fmt.Fprintf(stdout, "    %6s  cell %d: %s\n", t.Duration.Round(100*time.Millisecond), t.Cell, t.Head)
			}
		}
		for _, p := range r.Problems {
			fmt.Fprintf(stdout, "  - %s\n", p)
		}
	}
	for _, req := range reqs {
		if !seen[req.Notebook] {
			fmt.Fprintf(stdout, "nbcheck: %s (required by -require %s:%s) was not given\n", req.Notebook, req.Notebook, req.Tag)
			failed++
			seen[req.Notebook] = true
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d notebook(s) failed", failed)
	}
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "nbcheck: %v\n", err)
		os.Exit(1)
	}
}
