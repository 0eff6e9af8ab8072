package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// ErrUnmapped marks a container user with no host ID: the ticket could not
// be given to it.
var ErrUnmapped = errors.New("not mapped to a host ID")

// Owner is the host user and group the ticket and its directory belong to.
type Owner struct {
	UID, GID int
}

// Owner is the host identity of the container's process user: process.user
// as is, or mapped through the user namespace's ID mappings. The mappings
// come from config.json, or, when the container joins an existing user
// namespace (no mappings in config.json), from /proc/<pid>/uid_map of the
// container's process.
func (c *Config) Owner(pid int) (Owner, error) {
	var u User
	if c.Process != nil {
		u = c.Process.User
	}
	if !c.userNamespace() {
		return Owner{int(u.UID), int(u.GID)}, nil
	}
	uidMap, gidMap := c.Linux.UIDMappings, c.Linux.GIDMappings
	if len(uidMap) == 0 || len(gidMap) == 0 {
		if pid <= 0 {
			return Owner{}, fmt.Errorf("user %d: %w: user namespace without uidMappings and no container pid", u.UID, ErrUnmapped)
		}
		var err error
		if uidMap, err = readIDMap(fmt.Sprintf("/proc/%d/uid_map", pid)); err != nil {
			return Owner{}, err
		}
		if gidMap, err = readIDMap(fmt.Sprintf("/proc/%d/gid_map", pid)); err != nil {
			return Owner{}, err
		}
	}
	uid, ok := mapID(uidMap, u.UID)
	if !ok {
		return Owner{}, fmt.Errorf("user %d: uid %w", u.UID, ErrUnmapped)
	}
	gid, ok := mapID(gidMap, u.GID)
	if !ok {
		return Owner{}, fmt.Errorf("group %d: gid %w", u.GID, ErrUnmapped)
	}
	return Owner{int(uid), int(gid)}, nil
}

// mapID translates a container ID to the host. The overflow IDs (65534
// and 4294967295) are never a valid answer.
func mapID(m []IDMapping, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && uint64(id) < uint64(e.ContainerID)+uint64(e.Size) {
			h := uint64(e.HostID) + uint64(id-e.ContainerID)
			if h >= 1<<32-1 {
				return 0, false
			}
			return uint32(h), true
		}
	}
	return 0, false
}

// readIDMap reads a /proc/PID/{uid,gid}_map: lines of "inside outside count".
func readIDMap(file string) ([]IDMapping, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read user namespace mappings: %w", err)
	}
	return parseIDMap(b)
}

func parseIDMap(b []byte) ([]IDMapping, error) {
	var m []IDMapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("read user namespace mappings: bad line %q", sc.Text())
		}
		var v [3]uint32
		for i := range f {
			n, err := strconv.ParseUint(string(f[i]), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("read user namespace mappings: bad line %q", sc.Text())
			}
			v[i] = uint32(n)
		}
		m = append(m, IDMapping{ContainerID: v[0], HostID: v[1], Size: v[2]})
	}
	return m, nil
}
