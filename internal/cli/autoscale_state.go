package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// autoscaleState is what brisk autoscale --state keeps in its file: the worker count last
// applied and, per queue, the memory of the policy (autoscale.Snapshotter).
type autoscaleState struct {
	Version int                        `json:"version"`
	SavedAt time.Time                  `json:"saved_at"`
	Policy  string                     `json:"policy"`
	Workers int                        `json:"workers"`
	Queues  map[string]json.RawMessage `json:"queues"`
}

// stateFile is --state: read once at start, written after every decision (to a temporary
// file renamed over it, so that a crash leaves the previous version whole).
type stateFile struct {
	path string
	mu   sync.Mutex
	st   autoscaleState
}

// loadStateFile reads path; a missing file is an empty state. A file that is not a state
// file is an error: it may be another file given by mistake, and it is not overwritten.
func loadStateFile(path, policy string) (sf *stateFile, loaded *autoscaleState, err error) {
	sf = &stateFile{path: path, st: autoscaleState{Version: 1, Policy: policy, Queues: map[string]json.RawMessage{}}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return sf, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--state: %w", err)
	}
	var st autoscaleState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != 1 || st.Queues == nil {
		if err == nil {
			err = fmt.Errorf("version %d, queues %v", st.Version, st.Queues != nil)
		}
		return nil, nil, fmt.Errorf("--state %s is not a brisk autoscale state file (%v); give another path, or delete it to start afresh", path, err)
	}
	if st.Policy == policy {
		for q, v := range st.Queues {
			sf.st.Queues[q] = v
		}
	}
	sf.st.Workers = st.Workers
	return sf, &st, nil
}

// save records queue's policy memory (nil: none) and the workers now applied, and writes
// the file.
func (sf *stateFile) save(queue string, snapshot []byte, workers int) error {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if snapshot != nil {
		sf.st.Queues[queue] = snapshot
	}
	sf.st.Workers = workers
	sf.st.SavedAt = time.Now().UTC()
	b, err := json.Marshal(sf.st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(sf.path), "."+filepath.Base(sf.path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), sf.path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
