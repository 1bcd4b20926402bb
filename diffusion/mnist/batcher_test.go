package mnist

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestStepsPerEpoch(t *testing.T) {
	for _, tc := range []struct {
		n, bs int
		r     Remainder
		want  int
	}{
		{60000, 64, DropRemainder, 937}, {60000, 64, KeepRemainder, 938},
		{10000, 64, DropRemainder, 156}, {10000, 64, KeepRemainder, 157},
		{128, 64, DropRemainder, 2}, {128, 64, KeepRemainder, 2},
		{10, 64, DropRemainder, 0}, {10, 64, KeepRemainder, 1},
	} {
		if got := StepsPerEpoch(tc.n, tc.bs, tc.r); got != tc.want {
			t.Errorf("StepsPerEpoch(%d, %d, %v) = %d, want %d", tc.n, tc.bs, tc.r, got, tc.want)
		}
	}
}

func TestPermutation(t *testing.T) {
	const n = 1000
	p00, p01, p10 := Permutation(0, 0, n), Permutation(0, 1, n), Permutation(1, 0, n)
	if !slices.Equal(p00, Permutation(0, 0, n)) {
		t.Error("same seed and epoch, different order")
	}
	if slices.Equal(p00, p01) || slices.Equal(p00, p10) || slices.Equal(p01, p10) {
		t.Error("different seed or epoch, same order")
	}
	for _, p := range [][]int{p00, p01, p10} {
		sorted := slices.Sorted(slices.Values(p))
		if !slices.Equal(sorted, identity(n)) {
			t.Fatal("not a permutation")
		}
	}
	// Pinned values: the order must not change across Go versions or
	// refactors, or resumed runs would see different data.
	if got, want := Permutation(42, 3, 10), []int{5, 0, 1, 8, 7, 3, 4, 6, 9, 2}; !slices.Equal(got, want) {
		t.Errorf("Permutation(42, 3, 10) = %v, want %v", got, want)
	}
	if len(Permutation(1, 0, 0)) != 0 || !slices.Equal(Permutation(1, 0, 1), []int{0}) {
		t.Error("degenerate sizes")
	}
}

// collect runs b for steps batches.
func collect(b *Batcher, steps int) []*Batch {
	out := make([]*Batch, steps)
	for i := range out {
		out[i] = b.Next()
	}
	return out
}

func sameBatch(t *testing.T, what string, a, b *Batch) {
	t.Helper()
	if a.Position != b.Position || !slices.Equal(a.Indices, b.Indices) || !slices.Equal(a.Labels, b.Labels) ||
		a.Images.Shape() != b.Images.Shape() || !slices.Equal(a.Images.Data, b.Images.Data) {
		t.Fatalf("%s: batches differ: %+v %v vs %+v %v", what, a.Position, a.Indices, b.Position, b.Indices)
	}
}

func TestBatcherEpochs(t *testing.T) {
	const n, bs = 103, 10
	d := synthDataset(n, 7)
	for _, tc := range []struct {
		r         Remainder
		steps     int
		lastBatch int
	}{{DropRemainder, 10, 10}, {KeepRemainder, 11, 3}} {
		b, err := NewBatcher(d, BatcherConfig{BatchSize: bs, Seed: 5, Remainder: tc.r, Size: 16})
		if err != nil {
			t.Fatal(err)
		}
		if b.StepsPerEpoch() != tc.steps {
			t.Fatalf("%v: %d steps per epoch, want %d", tc.r, b.StepsPerEpoch(), tc.steps)
		}
		for epoch := range 3 {
			seen := make([]int, n)
			var order []int
			for step := range tc.steps {
				if got := b.Position(); got != (Position{epoch, step}) {
					t.Fatalf("Position() = %+v, want {%d %d}", got, epoch, step)
				}
				batch := b.Next()
				wantLen := bs
				if step == tc.steps-1 {
					wantLen = tc.lastBatch
				}
				if len(batch.Indices) != wantLen || batch.Images.Shape() != [4]int{wantLen, 16, 16, 1} {
					t.Fatalf("epoch %d step %d: %d examples, shape %v", epoch, step, len(batch.Indices), batch.Images.Shape())
				}
				if batch.Position != (Position{epoch, step}) {
					t.Fatalf("batch.Position = %+v", batch.Position)
				}
				for k, i := range batch.Indices {
					seen[i]++
					if batch.Labels[k] != d.Labels[i] {
						t.Fatalf("label of example %d", i)
					}
				}
				order = append(order, batch.Indices...)
			}
			// Exactly once per epoch (dropping the remainder skips the last n%bs of the permutation).
			if want := Permutation(5, epoch, n)[:len(order)]; !slices.Equal(order, want) {
				t.Fatalf("epoch %d does not follow Permutation(seed, epoch)", epoch)
			}
			count := 0
			for i, c := range seen {
				if c > 1 {
					t.Fatalf("epoch %d: example %d seen %d times", epoch, i, c)
				}
				count += c
			}
			if want := tc.steps*bs - (bs - tc.lastBatch); count != want {
				t.Fatalf("epoch %d: %d examples seen, want %d", epoch, count, want)
			}
		}
	}
}

func TestBatcherReproducibleAndResumable(t *testing.T) {
	d := synthDataset(50, 11)
	cfg := BatcherConfig{BatchSize: 8, Seed: 99, Remainder: KeepRemainder}
	newB := func(c BatcherConfig) *Batcher {
		t.Helper()
		b, err := NewBatcher(d, c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ref := collect(newB(cfg), 7*3) // 3 epochs of 7 steps

	// Same seed, same batches; lazy preprocessing gives identical values.
	lazy := cfg
	lazy.Lazy = true
	for i, b := range collect(newB(lazy), len(ref)) {
		sameBatch(t, "lazy", ref[i], b)
	}
	// Another seed gives another order.
	other := cfg
	other.Seed = 100
	if slices.Equal(collect(newB(other), 1)[0].Indices, ref[0].Indices) {
		t.Error("seeds 99 and 100 give the same first batch")
	}
	// Different epochs have different orders.
	if slices.Equal(ref[0].Indices, ref[7].Indices) {
		t.Error("epochs 0 and 1 start with the same batch")
	}

	// Resume at every position, via Start (through JSON, as a checkpoint
	// would store it) and via Seek: the following batches are the same.
	for k := range ref {
		raw, err := json.Marshal(ref[k].Position)
		if err != nil {
			t.Fatal(err)
		}
		var pos Position
		if err := json.Unmarshal(raw, &pos); err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.Start = pos
		c.Lazy = k%2 == 0
		resumed := collect(newB(c), len(ref)-k)
		for j, b := range resumed {
			sameBatch(t, "resumed", ref[k+j], b)
		}
	}
	b := newB(cfg)
	b.Next()
	if err := b.Seek(Position{Epoch: 1, Step: 3}); err != nil {
		t.Fatal(err)
	}
	sameBatch(t, "Seek", ref[7+3], b.Next())
	if raw, _ := json.Marshal(Position{Epoch: 2, Step: 5}); string(raw) != `{"epoch":2,"step":5}` {
		t.Errorf("Position JSON = %s", raw)
	}
}

func TestBatcherNoShuffleAndErrors(t *testing.T) {
	d := synthDataset(25, 1)
	b, err := NewBatcher(d, BatcherConfig{BatchSize: 10, NoShuffle: true, Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	if b.Config().Size != DefaultSize || b.Config().Remainder != DropRemainder {
		t.Errorf("defaults: %+v", b.Config())
	}
	for range 2 { // two epochs of 2 full batches, in data set order
		for step := range 2 {
			if got := b.Next().Indices; !slices.Equal(got, identity(25)[step*10:step*10+10]) {
				t.Fatalf("NoShuffle batch %d = %v", step, got)
			}
		}
	}
	for _, tc := range []struct {
		name string
		d    *Dataset
		cfg  BatcherConfig
	}{
		{"nil data set", nil, BatcherConfig{BatchSize: 1}},
		{"empty data set", d.Subset(0), BatcherConfig{BatchSize: 1}},
		{"label count", &Dataset{Images: d.Images, Labels: d.Labels[:3]}, BatcherConfig{BatchSize: 1}},
		{"zero batch size", d, BatcherConfig{}},
		{"bad remainder", d, BatcherConfig{BatchSize: 1, Remainder: 7}},
		{"batch larger than data, dropped", d, BatcherConfig{BatchSize: 26}},
		{"start step out of range", d, BatcherConfig{BatchSize: 10, Start: Position{0, 2}}},
		{"negative epoch", d, BatcherConfig{BatchSize: 10, Start: Position{-1, 0}}},
	} {
		if _, err := NewBatcher(tc.d, tc.cfg); err == nil {
			t.Errorf("%s: NewBatcher succeeded", tc.name)
		}
	}
	if _, err := NewBatcher(d, BatcherConfig{BatchSize: 26, Remainder: KeepRemainder, Lazy: true}); err != nil {
		t.Errorf("one partial batch per epoch: %v", err)
	}
	if err := b.Seek(Position{0, -1}); err == nil {
		t.Error("Seek to a negative step succeeded")
	}
}
