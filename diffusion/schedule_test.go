package diffusion

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestScheduleClosedForms(t *testing.T) {
	tests := []struct {
		kind      string
		firstBeta float64
		lastBeta  float64
	}{
		{ScheduleLinear, 1e-4, 0.02},
		{ScheduleScaledLinear, 5e-4, 0.1},
	}
	for _, tc := range tests {
		s, err := ScheduleByName(tc.kind, 200)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Betas[0]-tc.firstBeta) > 1e-12 || math.Abs(s.Betas[199]-tc.lastBeta) > 1e-12 {
			t.Errorf("%s: betas[0]=%g betas[199]=%g, want %g and %g", tc.kind, s.Betas[0], s.Betas[199], tc.firstBeta, tc.lastBeta)
		}
		// Linear betas: constant increments.
		step := (tc.lastBeta - tc.firstBeta) / 199
		for i := 1; i < 200; i++ {
			if d := s.Betas[i] - s.Betas[i-1]; math.Abs(d-step) > 1e-12 {
				t.Fatalf("%s: beta increment %d = %g, want %g", tc.kind, i, d, step)
			}
		}
		checkDerivedTables(t, s)
	}
	// The tutorial's schedule leaves ~13% of alpha-bar at the last step (documented error 5);
	// the scaled one reaches ~0.
	lin, _ := ScheduleByName(ScheduleLinear, 200)
	if ab := lin.AlphaBars[199]; ab < 0.12 || ab > 0.14 {
		t.Errorf("linear alpha-bar[T-1] = %g, want about 0.13", ab)
	}
	scaled, _ := ScheduleByName(ScheduleScaledLinear, 200)
	if ab := scaled.AlphaBars[199]; ab > 1e-4 {
		t.Errorf("scaled-linear alpha-bar[T-1] = %g, want < 1e-4", ab)
	}
}

// checkDerivedTables verifies each derived table against its definition, term by term.
func checkDerivedTables(t *testing.T, s *Schedule) {
	t.Helper()
	prod := 1.0
	for i := 0; i < s.T; i++ {
		prev := prod
		prod *= 1 - s.Betas[i]
		close := func(name string, got, want float64) {
			if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Fatalf("%s: %s[%d] = %.15g, want %.15g", s.Name, name, i, got, want)
			}
		}
		close("Alphas", s.Alphas[i], 1-s.Betas[i])
		close("AlphaBars", s.AlphaBars[i], prod)
		close("AlphaBarsPrev", s.AlphaBarsPrev[i], prev)
		close("SqrtAlphaBars", s.SqrtAlphaBars[i]*s.SqrtAlphaBars[i], prod)
		close("SqrtOneMinusABar", s.SqrtOneMinusABar[i]*s.SqrtOneMinusABar[i], 1-prod)
		close("PosteriorVariance", s.PosteriorVariance[i], s.Betas[i]*(1-prev)/(1-prod))
		// Posterior mean coefficients: for x_t = sqrt(ab) x0 (noise-free), the posterior mean must be
		// sqrt(ab_prev) x0, the noise-free x_{t-1}.
		close("PosteriorMean", s.PosteriorMeanX0[i]+s.PosteriorMeanXt[i]*math.Sqrt(prod), math.Sqrt(prev))
	}
	if s.PosteriorVariance[0] != 0 {
		t.Errorf("%s: posterior variance at t=0 is %g, want 0", s.Name, s.PosteriorVariance[0])
	}
}

func TestCosineSchedule(t *testing.T) {
	const T = 200
	s, err := CosineSchedule(T)
	if err != nil {
		t.Fatal(err)
	}
	checkDerivedTables(t, s)
	f := func(t int) float64 {
		c := math.Cos((float64(t)/T + 0.008) / 1.008 * math.Pi / 2)
		return c * c
	}
	// Away from the clipped end, alpha-bar equals f(t+1)/f(0) exactly.
	for _, i := range []int{0, 10, 50, 100, 150, 190} {
		if got, want := s.AlphaBars[i], f(i+1)/f(0); math.Abs(got-want) > 1e-9 {
			t.Errorf("cosine alpha-bar[%d] = %g, want %g", i, got, want)
		}
	}
	for i, b := range s.Betas {
		if b > 0.999 || b <= 0 {
			t.Fatalf("cosine beta[%d] = %g outside (0, 0.999]", i, b)
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	if _, err := ScheduleByName("quadratic", 200); err == nil {
		t.Error("unknown schedule accepted")
	}
	if _, err := LinearSchedule(0, 1e-4, 0.02); err == nil {
		t.Error("T=0 accepted")
	}
	if _, err := LinearSchedule(10, 0.02, 1e-4); err == nil {
		t.Error("decreasing betas accepted")
	}
	if _, err := ScaledLinearSchedule(10); err == nil {
		t.Error("scaled-linear with beta_max >= 1 accepted")
	}
	if _, err := NewSchedule("bad", []float64{0.1, 1.5}); err == nil {
		t.Error("beta > 1 accepted")
	}
}

func TestDDIMTimesteps(t *testing.T) {
	tests := []struct {
		T, S    int
		spacing Spacing
		want    []int
	}{
		{200, 10, SpacingTrailing, []int{199, 179, 159, 139, 119, 99, 79, 59, 39, 19}},
		{200, 1, SpacingTrailing, []int{199}},
		{10, 10, SpacingTrailing, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{10, 3, SpacingTrailing, []int{9, 6, 2}},
		// round(i·199/9) for i = 9..0.
		{200, 10, SpacingLinspace, []int{199, 177, 155, 133, 111, 88, 66, 44, 22, 0}},
		{200, 1, SpacingLinspace, []int{199}},
		{10, 10, SpacingLinspace, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{10, 3, SpacingLinspace, []int{9, 5, 0}},
		{200, 2, "", []int{199, 0}}, // DefaultSpacing is linspace.
	}
	for _, tc := range tests {
		got, err := DDIMTimesteps(tc.T, tc.S, tc.spacing)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("DDIMTimesteps(%d, %d, %q) = %v, want %v", tc.T, tc.S, tc.spacing, got, tc.want)
		}
	}
	for _, S := range []int{0, -1, 201} {
		if _, err := DDIMTimesteps(200, S, SpacingLinspace); err == nil {
			t.Errorf("DDIMTimesteps(200, %d) accepted", S)
		}
	}
	// Every S in [1, T] gives S distinct timesteps, decreasing from T-1; linspace ends at 0.
	for _, T := range []int{7, 200} {
		for S := 1; S <= T; S++ {
			for _, sp := range Spacings {
				ts, err := DDIMTimesteps(T, S, sp)
				if err != nil {
					t.Fatal(err)
				}
				ok := len(ts) == S && ts[0] == T-1 && (sp != SpacingLinspace || S == 1 || ts[S-1] == 0)
				for i := 1; i < len(ts); i++ {
					ok = ok && ts[i] < ts[i-1] && ts[i] >= 0
				}
				if !ok {
					t.Fatalf("DDIMTimesteps(%d, %d, %s) = %v", T, S, sp, ts)
				}
			}
		}
	}
	if _, err := DDIMTimesteps(200, 10, "leading"); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("unknown spacing: err = %v, want one listing the spacings", err)
	}
}
