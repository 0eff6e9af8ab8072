package container

import "path"

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
