package experiment

import (
	"strings"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/diffusion"
)

// SnapshotModel returns a Model for sampling from the weights that store holds now, e.g. during
// training: the model's variables and their moving averages are copied into a new store, and the
// averages are used when kept, as LoadModel does. Training can go on with store meanwhile; the
// optimizer's state is not copied.
func SnapshotModel(meta Meta, store *model.Store) (*Model, error) {
	m := &Model{Meta: meta, Store: model.NewStore()}
	modelPrefix := diffusion.ModelScope(store).Scope() + "/"
	emaPrefix := "/" + diffusion.EMAScope + modelPrefix
	for v := range store.IterVariables() {
		if !v.HasValue() || !(strings.HasPrefix(v.Path(), modelPrefix) || strings.HasPrefix(v.Path(), emaPrefix)) {
			continue
		}
		value, err := v.Value()
		if err != nil {
			return nil, err
		}
		clone, err := value.Clone()
		if err != nil {
			return nil, err
		}
		c, err := m.Store.CreateVariable(v.Path(), clone)
		if err != nil {
			return nil, err
		}
		c.Trainable = v.Trainable
	}
	var err error
	if m.Schedule, err = meta.BuildSchedule(); err != nil {
		return nil, err
	}
	if m.EMA, err = diffusion.UseEMAWeights(m.Store); err != nil {
		return nil, err
	}
	return m, nil
}
