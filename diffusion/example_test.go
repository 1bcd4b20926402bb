package diffusion_test

import (
	"fmt"

	"github.com/godiffusion/godiffusion/diffusion"
)

// A sampler is a plan: the timesteps it visits and the coefficients of each update. DPM-Solver++(2M)
// visits DDIM's timesteps; its first and last steps are DDIM's (first order), the others also weigh
// the previous step's estimate x̂_0' (second order). The step to t = 0 crosses the widest range of
// log-SNR and extrapolates most: making it first order scored worse (see the README).
func ExampleDPMSolver() {
	s, err := diffusion.ScheduleByName(diffusion.ScheduleCosine, 200)
	if err != nil {
		panic(err)
	}
	plan, err := diffusion.DPMSolver{Steps: 5}.Plan(s)
	if err != nil {
		panic(err)
	}
	for _, u := range plan {
		fmt.Printf("t=%3d: x_prev = %.3f x_t %+.3f x̂_0 %+.3f x̂_0'\n", u.T, u.Xt, u.X0, u.X0Prev)
	}
	// Output:
	// t=199: x_prev = 0.925 x_t +0.380 x̂_0 +0.000 x̂_0'
	// t=149: x_prev = 0.775 x_t +0.426 x̂_0 -0.023 x̂_0'
	// t=100: x_prev = 0.556 x_t +0.795 x̂_0 -0.265 x̂_0'
	// t= 50: x_prev = 0.040 x_t +2.808 x̂_0 -1.845 x̂_0'
	// t=  0: x_prev = 0.000 x_t +1.000 x̂_0 +0.000 x̂_0'
}
