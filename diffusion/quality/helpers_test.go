package quality

import (
	"bytes"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/core/tensors"
)

// testWriter collects messages (safe for concurrent writes).
type testWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *testWriter) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
}

func (w *testWriter) contains(s string) bool { return strings.Contains(w.String(), s) }

func tensorOf(data []float32, dims ...int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(append([]float32(nil), data...), dims...)
}
