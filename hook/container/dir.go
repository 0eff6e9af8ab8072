package container

import (
	"fmt"
	"os"
	"path"
)

// Stage is an OCI hook stage gmsa-hook acts at.
type Stage string

// The stages (see package hook for what each does).
const (
	CreateRuntime   Stage = "createRuntime"
	Prestart        Stage = "prestart"
	CreateContainer Stage = "createContainer"
	Poststop        Stage = "poststop"
)

// Stages lists the stages in the order a runtime runs them.
var Stages = []Stage{CreateRuntime, Prestart, CreateContainer, Poststop}

// Where a container's files live under gmsa-hook's run directory (see
// package hook for the whole layout and who owns what).
const (
	ContainersDir = "containers"
	KrbDir        = "krbdir"
)

// Dir is a container's directory under a run directory.
func Dir(runDir, id string) string {
	return path.Join(runDir, ContainersDir, id)
}

// TicketDir is the directory bound into the container.
func TicketDir(runDir, id string) string {
	return path.Join(runDir, ContainersDir, id, KrbDir)
}

// Remove deletes a container's directory; an absent one is no error.
func Remove(runDir, id string) error {
	dir := Dir(runDir, id)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
