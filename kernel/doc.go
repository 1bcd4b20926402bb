// Package kernel holds the display helpers shared by the GoNB notebooks and the
// command-line batch jobs: pixel mapping, image grids, animated GIFs, loss-curve
// plots, atomic file output, inline display inside GoNB and progress reporting.
//
// The package deliberately does not depend on GoMLX: callers copy their tensors
// into plain float32 slices (see [Batch]) and everything here works on those.
//
// Images are single-channel, with values in [-1, 1] (the range the diffusion
// model is trained on); [ToGray] maps them to 8-bit gray levels.
//
// Inside a GoNB notebook, the Show* functions display results inline and
// [Progress] draws a live HTML progress bar. Outside GoNB the Show* functions do
// nothing and return false, so code shared with scripts can call them freely;
// scripts save results with the Write* functions, which write atomically.
package kernel
