package container

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	MetaFile      = "meta.json"
)

// ErrInUse marks a container directory that another container's running
// process holds: the same ID and bundle path under two runtimes.
var ErrInUse = errors.New("ticket directory in use by another container")

// hashLen is how many hex digits of the bundle hash a name carries: 64
// bits, short enough for ls, too many to find a colliding bundle path.
const hashLen = 16

// Name is the name of a container's directory under <RunDir>/containers:
// the container ID, a dash and the first hex digits of the SHA-256 of the
// bundle path and the ID. A container ID is unique only within one runtime
// (a runc --root, a containerd namespace); its bundle path differs between
// them and is in the state of every stage. An ID too long to leave room
// for the hash in one path element (255 bytes) is cut: the hash still
// covers all of it.
func Name(id, bundle string) string {
	sum := sha256.Sum256([]byte(bundle + "\x00" + id))
	if max := 255 - 1 - hashLen; len(id) > max {
		id = id[:max]
	}
	return id + "-" + hex.EncodeToString(sum[:])[:hashLen]
}

// Dir is a container's directory under a run directory.
func Dir(runDir, id, bundle string) string {
	return path.Join(runDir, ContainersDir, Name(id, bundle))
}

// TicketDir is the directory bound into the container.
func TicketDir(runDir, id, bundle string) string {
	return path.Join(Dir(runDir, id, bundle), KrbDir)
}

// Remove deletes a container's directory; an absent one is no error.
func Remove(runDir, id, bundle string) error {
	dir := Dir(runDir, id, bundle)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// InUse is an error when the container directory dir belongs to a running
// process other than pid, the process in the stage's state (0 when the
// runtime gives none): its meta.json names that process and its start
// time. A directory without a readable meta.json, or whose process is gone,
// is nobody's and may go.
func InUse(dir string, pid int) error {
	b, err := ReadSmall(path.Join(dir, MetaFile))
	if err != nil {
		return nil
	}
	var m struct {
		Pid      int    `json:"pid"`
		PidStart uint64 `json:"pid_start"`
	}
	if json.Unmarshal(b, &m) != nil || m.Pid <= 0 || m.Pid == pid || !ProcessAlive(m.Pid, m.PidStart) {
		return nil
	}
	return fmt.Errorf("%w: %s: its meta.json names process %d, which still runs", ErrInUse, dir, m.Pid)
}
