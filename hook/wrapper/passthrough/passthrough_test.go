package passthrough_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gmsa-hook/gmsa-hook/hook/wrapper/passthrough"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want passthrough.Invocation
		err  string
	}{
		{"containerd shim create", []string{"--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json", "--log-format", "json", "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/tmp/c.sock", "abc"},
			passthrough.Invocation{Command: "create", Bundle: "/b", ID: "abc"}, ""},
		{"equals forms", []string{"--root=/r", "--debug", "create", "-b=/b", "--no-pivot", "id1"}, passthrough.Invocation{Command: "create", Bundle: "/b", ID: "id1"}, ""},
		{"short bundle", []string{"create", "-b", "/b", "id2"}, passthrough.Invocation{Command: "create", Bundle: "/b", ID: "id2"}, ""},
		{"run without bundle", []string{"run", "-d", "id3"}, passthrough.Invocation{Command: "run", ID: "id3"}, ""},
		{"id after --", []string{"create", "--bundle", "/b", "--", "-id4"}, passthrough.Invocation{Command: "create", Bundle: "/b", ID: "-id4"}, ""},
		{"start", []string{"--root", "/r", "start", "abc"}, passthrough.Invocation{Command: "start"}, ""},
		{"delete", []string{"--root", "/r", "--log", "x", "delete", "--force", "abc"}, passthrough.Invocation{Command: "delete"}, ""},
		{"no command", []string{"--version"}, passthrough.Invocation{}, ""},
		{"unknown global flag", []string{"--frobnicate", "x", "create", "id"}, passthrough.Invocation{}, `unknown runtime flag "--frobnicate" before the command`},
		{"bundle without value", []string{"create", "--bundle"}, passthrough.Invocation{Command: "create"}, `runtime flag "--bundle" has no value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := passthrough.ParseArgs(tt.args)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
