package experiment

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/kernel"
)

// LossRecord is one training step's loss, a row of a run folder's losses.csv.
type LossRecord struct {
	Step  int     // Global step after the update (1 for the first).
	Epoch int     // 1-based epoch of the batch.
	Loss  float64 // The batch's mean loss.
}

// LossesFile is the name of the loss log in a run folder.
const LossesFile = "losses.csv"

// WriteLosses writes history to runDir/losses.csv (columns step, epoch, loss), atomically.
func WriteLosses(runDir string, history []LossRecord) error {
	return kernel.WriteAtomic(filepath.Join(runDir, LossesFile), func(w io.Writer) error {
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"step", "epoch", "loss"})
		for _, r := range history {
			_ = cw.Write([]string{strconv.Itoa(r.Step), strconv.Itoa(r.Epoch), strconv.FormatFloat(r.Loss, 'g', 8, 64)})
		}
		cw.Flush()
		return cw.Error()
	})
}

// ReadLosses reads runDir/losses.csv up to (and including) step upTo: rows after the checkpoint
// being resumed belong to steps that will be redone. A missing file is an empty history.
func ReadLosses(runDir string, upTo int) ([]LossRecord, error) {
	f, err := os.Open(filepath.Join(runDir, LossesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	var history []LossRecord
	for i, row := range rows {
		if i == 0 {
			continue
		}
		var r LossRecord
		var e1, e2, e3 error
		r.Step, e1 = strconv.Atoi(row[0])
		r.Epoch, e2 = strconv.Atoi(row[1])
		r.Loss, e3 = strconv.ParseFloat(row[2], 64)
		if err := errors.Join(e1, e2, e3); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", f.Name(), i+1, err)
		}
		if r.Step <= upTo {
			history = append(history, r)
		}
	}
	return history, nil
}

// LossCurveSVG draws history as a loss curve (log scale, smoothed over 50 steps).
func LossCurveSVG(history []LossRecord) string {
	steps := make([]int, len(history))
	losses := make([]float64, len(history))
	for i, r := range history {
		steps[i], losses[i] = r.Step, r.Loss
	}
	return kernel.LossCurveSVG(steps, losses, "training loss", kernel.PlotOptions{LogY: true, SmoothWindow: 50})
}

// Loop is the training loop that scripts/train and the notebooks share: it runs Trainer steps on
// the Batcher's batches until the global step reaches Steps, the Deadline passes or the context is
// done, logs the losses (History, Progress, "Loss at step" lines), and saves checkpoints of Store
// with Meta into the run folder Out every CheckpointEvery steps, at the end and when stopped,
// keeping the last Keep. A checkpoint plus losses.csv is all a resumed run needs.
type Loop struct {
	Out     string // Run folder.
	Meta    *Meta  // Saved with every checkpoint; its Step and Position follow the training.
	Store   *model.Store
	Trainer *diffusion.Trainer
	Batcher *mnist.Batcher

	Steps           int64     // Train until the global step reaches this.
	Deadline        time.Time // Stop at the first step after it; zero: no time limit.
	CheckpointEvery int       // Save every this many steps (0: only when the loop ends).
	Keep            int       // Checkpoints kept in Out (0: all).
	LogEvery        int       // A "Loss at step" line every this many steps of an epoch (0: none).

	Progress *kernel.Progress // Updated after every step; its Printf prints the log lines.
	History  []LossRecord     // The losses so far (read back when resuming); the loop appends.

	// AfterStep, if set, runs after every step (and its checkpoint), e.g. to draw samples.
	AfterStep func(step int64) error
}

// ErrDeadline is what Run returns when it stopped at Loop.Deadline (after saving).
var ErrDeadline = errors.New("time budget reached")

// Run trains. It returns nil when Steps are done, ErrDeadline when the deadline stopped it, the
// context's error when it was cancelled (e.g. Ctrl-C), each after saving a checkpoint; or the
// error of a step (e.g. a diverged loss), after which the last saved checkpoint is the one to
// resume from.
func (l *Loop) Run(ctx context.Context) error {
	epochSum, epochCount := l.epochLossSoFar(l.Batcher.Position().Epoch)
	lastSaved := l.Trainer.GlobalStep()
	saveIfNew := func() error {
		if l.Trainer.GlobalStep() == lastSaved {
			return nil
		}
		lastSaved = l.Trainer.GlobalStep()
		return l.Save()
	}
	for l.Trainer.GlobalStep() < l.Steps {
		if !l.Deadline.IsZero() && time.Now().After(l.Deadline) {
			l.Progress.Done()
			if err := saveIfNew(); err != nil {
				return err
			}
			return ErrDeadline
		}
		if err := ctx.Err(); err != nil {
			l.Progress.Done()
			if serr := saveIfNew(); serr != nil {
				return fmt.Errorf("%w, and saving the checkpoint failed: %w", err, serr)
			}
			return err
		}
		batch := l.Batcher.Next()
		x := tensors.FromFlatDataAndDimensions(batch.Images.Data, batch.Images.N, batch.Images.Size, batch.Images.Size, 1)
		var loss float64
		var err error
		if l.Meta.UNet.Classes > 0 {
			labels := make([]int32, len(batch.Labels))
			for i, d := range batch.Labels {
				labels[i] = int32(d)
			}
			loss, err = l.Trainer.StepWithLabels(x, labels)
		} else {
			loss, err = l.Trainer.Step(x)
		}
		x.FinalizeAll()
		if err != nil {
			l.Progress.Done()
			return err
		}
		done := l.Trainer.GlobalStep()
		epoch, inEpoch := batch.Position.Epoch+1, batch.Position.Step
		l.History = append(l.History, LossRecord{Step: int(done), Epoch: epoch, Loss: loss})
		epochSum, epochCount = epochSum+loss, epochCount+1
		l.Progress.Update(int(done), kernel.F("loss", loss), kernel.F("epoch", epoch))
		if l.LogEvery > 0 && inEpoch%l.LogEvery == 0 {
			l.Progress.Printf("Loss at step %d: %.6g", inEpoch, loss)
		}
		if inEpoch == l.Batcher.StepsPerEpoch()-1 {
			l.Progress.Printf("Training loss after epoch %d: %.6g", epoch, epochSum/float64(epochCount))
			epochSum, epochCount = 0, 0
		}
		if (l.CheckpointEvery > 0 && done%int64(l.CheckpointEvery) == 0) || done == l.Steps {
			if err := saveIfNew(); err != nil {
				return err
			}
		}
		if l.AfterStep != nil {
			if err := l.AfterStep(done); err != nil {
				return err
			}
		}
	}
	l.Progress.Done()
	if epochCount > 0 {
		l.Progress.Printf("Training loss after %d steps of epoch %d: %.6g", epochCount, l.Batcher.Position().Epoch+1, epochSum/float64(epochCount))
	}
	return saveIfNew()
}

// Save writes a checkpoint of the current step, prunes old ones and rewrites losses.csv.
func (l *Loop) Save() error {
	l.Meta.Position = l.Batcher.Position()
	l.Meta.Step = l.Trainer.GlobalStep()
	if err := diffusion.SaveCheckpoint(CheckpointPath(l.Out, l.Meta.Step), l.Store, l.Meta); err != nil {
		return err
	}
	if l.Keep > 0 {
		if err := PruneCheckpoints(l.Out, l.Keep); err != nil {
			return err
		}
	}
	return WriteLosses(l.Out, l.History)
}

// epochLossSoFar sums the losses already recorded for the given (0-based) epoch.
func (l *Loop) epochLossSoFar(epoch int) (sum float64, n int) {
	for _, r := range l.History {
		if r.Epoch == epoch+1 {
			sum += r.Loss
			n++
		}
	}
	return sum, n
}
