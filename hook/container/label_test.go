package container

import (
	"os"
	"path/filepath"
	"testing"
)

// dockerID is the container of ../testdata/docker.
const dockerID = "e2eb1e974503daccc9e19ea4feb66079c7614f049e56232d38c2b50f7aca1994"

func TestDockerLabelsMalformed(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.v2.json"), []byte(`{"ID":"a","Config":{"Labels":[1]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := dockerLabels(dir, "a")
	want := `read docker labels from ` + dir + `/config.v2.json: key "Config.Labels": want map[string]string`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestContainerdNamespace(t *testing.T) {
	tests := []struct {
		bundle, id, ns string
		ok             bool
	}{
		{"/run/containerd/io.containerd.runtime.v2.task/default/web1", "web1", "default", true},
		{"/var/run/x/state/io.containerd.runtime.v2.task/k8s.io/3f2a1c", "3f2a1c", "k8s.io", true},
		{"/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/abc", "abc", "moby", true},
		{"/run/containerd/io.containerd.runtime.v2.task/default/web1", "web2", "", false},
		{"/run/containerd/io.containerd.runtime.v1.linux/default/web1", "web1", "", false},
		{"/tmp/bundles/web1", "web1", "", false},
		{"/io.containerd.runtime.v2.task/web1", "web1", "", false},
	}
	for _, tt := range tests {
		ns, ok := ContainerdNamespace(tt.bundle, tt.id)
		if ns != tt.ns || ok != tt.ok {
			t.Errorf("ContainerdNamespace(%q, %q) = %q, %v; want %q, %v", tt.bundle, tt.id, ns, ok, tt.ns, tt.ok)
		}
	}
}
