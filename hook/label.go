package hook

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// find looks for the credential spec: where the files say it
// (container.LabelFromFiles), else, for a container of containerd, in its
// containerd labels.
func (r *Request) find(ctx context.Context, st *container.State, cfg *container.Config) (container.Label, error) {
	lab, decided, err := container.LabelFromFiles(st, cfg)
	if err != nil || decided {
		return lab, err
	}
	ns, _ := container.ContainerdNamespace(st.Bundle, st.ID)
	addr := r.ContainerdAddress
	if addr == "" {
		addr = shimAddress()
	}
	labels, err := containerdLabels(ctx, addr, ns, st.ID)
	if err != nil {
		return container.Label{}, err
	}
	return container.Label{Source: labels[container.Key], Origin: container.FromContainerd, Labels: labels}, nil
}

// DefaultContainerdAddress is containerd's socket when no other is known.
const DefaultContainerdAddress = "/run/containerd/containerd.sock"

// shimAddress is the containerd socket the container's shim talks to: the
// shim (containerd-shim-runc-v2 -namespace NS -id ID -address SOCKET) is the
// runtime's parent, and the runtime is the hook's parent. It falls back to
// containerd's default socket.
func shimAddress() string {
	pid := os.Getppid()
	for range 3 {
		if pid <= 1 {
			break
		}
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
			if strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
				for i, a := range args {
					if (a == "-address" || a == "--address") && i+1 < len(args) {
						return args[i+1]
					}
					if v, ok := strings.CutPrefix(a, "-address="); ok {
						return v
					}
				}
			}
		}
		pid = parentOf(pid)
	}
	return DefaultContainerdAddress
}

// parentOf reads a process's parent from /proc/PID/stat, or 0.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	var state byte
	var ppid int
	if _, err := fmt.Sscanf(string(b[i+1:]), " %c %d", &state, &ppid); err != nil {
		return 0
	}
	return ppid
}
