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

// QuickRun does a hook stage when it needs nothing but files, and reports
// whether it is done. For a container without a label as far as files
// tell, and nothing of it in the run directory, every stage has nothing to
// do, which is what package hook concludes without asking containerd. At
// createContainer, a labelled container whose ticket directory
// createRuntime placed gets it mounted (MountTicketDir), as package hook
// does. At poststop, a container's directory is removed, as package hook
// does, unless the run directory is unusable or another container's
// running process holds it. Any doubt, or any error, is false: the full
// hook run decides, does the stage again, and reports what is wrong.
func QuickRun(stage Stage, st *State, runDir string) bool {
	if !path.IsAbs(runDir) {
		return false
	}
	switch stage {
	case CreateRuntime, Prestart:
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
		return absent(Dir(runDir, st.ID, st.Bundle))
	case CreateContainer:
		src := TicketDir(runDir, st.ID, st.Bundle)
		if absent(src) {
			return st.Annotations[Key] == ""
		}
		// Placed at createRuntime: the mount needs the bundle and the
		// directory only. A failed mount leaves nothing mounted; the full
		// run tries again, reports it and removes the directory.
		cfg, err := ReadConfig(st.Bundle)
		if err != nil {
			return false
		}
		rootfs, err := cfg.Rootfs(st.Bundle)
		if err != nil {
			return false
		}
		return MountTicketDir(src, rootfs) == nil
	case Poststop:
		// A directory another container's process holds is the full run's
		// to keep and report.
		dir := Dir(runDir, st.ID, st.Bundle)
		return absent(dir) || (CheckRunDir(runDir) == nil && InUse(dir, st.Pid) == nil && Remove(runDir, st.ID, st.Bundle) == nil)
	}
	return false
}

func absent(file string) bool {
	_, err := os.Lstat(file)
	return errors.Is(err, fs.ErrNotExist)
}
