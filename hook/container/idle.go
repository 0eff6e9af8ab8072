package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// ReadConfig reads the bundle's config.json.
func ReadConfig(bundle string) (*Config, error) {
	file := path.Join(bundle, "config.json")
	b, err := ReadSmall(file)
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return c, nil
}

// Idle reports whether a hook run at stage certainly has nothing to do:
// the container has no label as far as files tell, and nothing of it is in
// the run directory. That is what every stage of package hook concludes for
// such a container, without asking containerd. Any doubt, or any error, is
// false: the full hook run decides, and reports what is wrong.
func Idle(stage string, st *State, runDir string) bool {
	if !path.IsAbs(runDir) {
		return false
	}
	switch stage {
	case "createRuntime", "prestart":
		cfg, err := ReadConfig(st.Bundle)
		if err != nil {
			return false
		}
		lab, decided, err := LabelFromFiles(st, cfg)
		if err != nil || !decided || lab.Source != "" {
			return false
		}
		// A directory left by an earlier container of the same name is
		// the full run's to remove.
		return absent(Dir(runDir, st.ID))
	case "createContainer":
		return st.Annotations[Key] == "" && absent(TicketDir(runDir, st.ID))
	case "poststop":
		return absent(Dir(runDir, st.ID))
	}
	return false
}

func absent(file string) bool {
	_, err := os.Lstat(file)
	return errors.Is(err, fs.ErrNotExist)
}
