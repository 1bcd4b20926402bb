package diffusion

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/internal/atomicfile"
)

// checkpointMagic opens every checkpoint file; the version follows it.
const (
	checkpointMagic   = "GODIFFCK"
	checkpointVersion = 1
)

// checkpointHeader is the JSON header of a checkpoint file.
type checkpointHeader struct {
	Meta      json.RawMessage      `json:"meta"`
	Variables []checkpointVariable `json:"variables"`
}

type checkpointVariable struct {
	Path      string `json:"path"`
	DType     string `json:"dtype"`
	Dims      []int  `json:"dims"`
	Trainable bool   `json:"trainable"`
	Bytes     int64  `json:"bytes"`
}

// SaveCheckpoint writes every variable of store (weights, optimizer state, global step, random
// state) and meta (any JSON-encodable value: model config, schedule, data position...) to path.
// It writes a temporary file in the same folder and renames it, so path always holds either the
// previous complete checkpoint or the new one, never a partial file.
//
// File layout: "GODIFFCK", uint32 version, uint64 header length, JSON header, raw little-endian
// variable data in header order, CRC-32 (IEEE) of everything before it.
func SaveCheckpoint(path string, store *model.Store, meta any) error {
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("checkpoint %s: encoding metadata: %w", path, err)
	}
	var vars []*model.Variable
	for v := range store.IterVariables() {
		if v.HasValue() {
			vars = append(vars, v)
		}
	}
	slices.SortFunc(vars, func(a, b *model.Variable) int { return compareStrings(a.Path(), b.Path()) })
	header := checkpointHeader{Meta: metaJSON}
	for _, v := range vars {
		s := v.Shape()
		header.Variables = append(header.Variables, checkpointVariable{
			Path: v.Path(), DType: s.DType.String(), Dims: s.Dimensions, Trainable: v.Trainable, Bytes: int64(s.ByteSize())})
	}
	headerJSON, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("checkpoint %s: encoding header: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		crc := crc32.NewIEEE()
		mw := io.MultiWriter(w, crc)
		prefix := make([]byte, 0, len(checkpointMagic)+12)
		prefix = append(prefix, checkpointMagic...)
		prefix = binary.LittleEndian.AppendUint32(prefix, checkpointVersion)
		prefix = binary.LittleEndian.AppendUint64(prefix, uint64(len(headerJSON)))
		if _, err := mw.Write(prefix); err != nil {
			return err
		}
		if _, err := mw.Write(headerJSON); err != nil {
			return err
		}
		for _, v := range vars {
			value, err := v.Value()
			if err != nil {
				return fmt.Errorf("variable %s: %w", v.Path(), err)
			}
			var werr error
			if err := value.ConstBytes(func(data []byte) { _, werr = mw.Write(data) }); err != nil {
				return err
			}
			if werr != nil {
				return werr
			}
		}
		return binary.Write(w, binary.LittleEndian, crc.Sum32())
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ErrCorruptCheckpoint is wrapped by LoadCheckpoint errors for files that are not complete checkpoints.
var ErrCorruptCheckpoint = errors.New("corrupt or truncated checkpoint")

// ReadCheckpointMeta decodes only the metadata of a checkpoint into meta, so callers can check
// that it matches their model before loading it.
func ReadCheckpointMeta(path string, meta any) error {
	header, _, err := readCheckpoint(path, false)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(header.Meta, meta); err != nil {
		return fmt.Errorf("checkpoint %s: decoding metadata: %w", path, err)
	}
	return nil
}

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint into store, and decodes its metadata
// into meta (if not nil). Variables already in the store must have the same shape as in the file;
// a mismatch (a checkpoint of another model size) is an error naming the variable. Nothing in the
// store is changed unless the whole file is valid.
func LoadCheckpoint(path string, store *model.Store, meta any) error {
	header, data, err := readCheckpoint(path, true)
	if err != nil {
		return err
	}
	if meta != nil {
		if err := json.Unmarshal(header.Meta, meta); err != nil {
			return fmt.Errorf("checkpoint %s: decoding metadata: %w", path, err)
		}
	}
	type pending struct {
		cv     checkpointVariable
		tensor *tensors.Tensor
	}
	var all []pending
	offset := int64(0)
	for _, cv := range header.Variables {
		dtype, err := dtypes.DTypeString(cv.DType)
		if err != nil {
			return fmt.Errorf("checkpoint %s: variable %s has unknown dtype %q: %w", path, cv.Path, cv.DType, ErrCorruptCheckpoint)
		}
		shape := shapes.Make(dtype, cv.Dims...)
		if int64(shape.ByteSize()) != cv.Bytes {
			return fmt.Errorf("checkpoint %s: variable %s: %d bytes for shape %s: %w", path, cv.Path, cv.Bytes, shape, ErrCorruptCheckpoint)
		}
		if existing := store.GetVariable(cv.Path); existing != nil && !existing.Shape().Equal(shape) {
			return fmt.Errorf("checkpoint %s: variable %s has shape %s but the model's is %s: the checkpoint was written for another model configuration (preset)",
				path, cv.Path, shape, existing.Shape())
		}
		t := tensors.FromShape(shape)
		chunk := data[offset : offset+cv.Bytes]
		if err := t.MutableBytes(func(b []byte) { copy(b, chunk) }); err != nil {
			return err
		}
		offset += cv.Bytes
		all = append(all, pending{cv, t})
	}
	for _, p := range all {
		if v := store.GetVariable(p.cv.Path); v != nil {
			if err := v.SetValue(p.tensor); err != nil {
				return fmt.Errorf("checkpoint %s: variable %s: %w", path, p.cv.Path, err)
			}
			v.Trainable = p.cv.Trainable
			continue
		}
		v, err := store.CreateVariable(p.cv.Path, p.tensor)
		if err != nil {
			return fmt.Errorf("checkpoint %s: variable %s: %w", path, p.cv.Path, err)
		}
		v.Trainable = p.cv.Trainable
	}
	return nil
}

// readCheckpoint validates the file and returns its header and (if withData) the variables' bytes.
func readCheckpoint(path string, withData bool) (*checkpointHeader, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	corrupt := func(what string) error {
		return fmt.Errorf("checkpoint %s: %s: %w (delete it and resume from an older checkpoint, or retrain)", path, what, ErrCorruptCheckpoint)
	}
	prefixLen := len(checkpointMagic) + 12
	if len(raw) < prefixLen+4 || string(raw[:len(checkpointMagic)]) != checkpointMagic {
		return nil, nil, corrupt("not a checkpoint file (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(raw[len(checkpointMagic):]); v != checkpointVersion {
		return nil, nil, corrupt(fmt.Sprintf("unsupported version %d", v))
	}
	body, sum := raw[:len(raw)-4], binary.LittleEndian.Uint32(raw[len(raw)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, nil, corrupt("checksum mismatch")
	}
	hlen := binary.LittleEndian.Uint64(raw[len(checkpointMagic)+4:])
	if hlen > uint64(len(body)-prefixLen) {
		return nil, nil, corrupt("header length out of range")
	}
	header := &checkpointHeader{}
	if err := json.Unmarshal(body[prefixLen:prefixLen+int(hlen)], header); err != nil {
		return nil, nil, corrupt("bad header: " + err.Error())
	}
	data := body[prefixLen+int(hlen):]
	var total int64
	for _, cv := range header.Variables {
		total += cv.Bytes
	}
	if total != int64(len(data)) {
		return nil, nil, corrupt(fmt.Sprintf("holds %d data bytes, header lists %d", len(data), total))
	}
	if !withData {
		data = nil
	}
	return header, data, nil
}
