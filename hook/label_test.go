package hook

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const dockerID = "e2eb1e974503daccc9e19ea4feb66079c7614f049e56232d38c2b50f7aca1994"

func dockerConfigJSON(t *testing.T, hostnameSource string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(`{"root":{"path":"/var/lib/docker/overlay2/x/merged"},"annotations":null,"mounts":[
		{"destination":"/proc","type":"proc","source":"proc"},
		{"destination":"/etc/resolv.conf","type":"bind","source":"` + filepath.Join(filepath.Dir(hostnameSource), "resolv.conf") + `"},
		{"destination":"/etc/hostname","type":"bind","source":"` + hostnameSource + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// realDockerConfig is the config.json Docker 20.10 wrote for the container
// of testdata/docker, its mounts moved to testdata.
func realDockerConfig(t *testing.T, dockerDir string) *Config {
	t.Helper()
	b, err := os.ReadFile("testdata/config-docker.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Annotations != nil {
		t.Fatalf("docker wrote annotations: %v", c.Annotations)
	}
	for i, m := range c.Mounts {
		if dir, base := filepath.Split(m.Source); strings.HasSuffix(filepath.Clean(dir), dockerID) {
			c.Mounts[i].Source = filepath.Join(dockerDir, base)
		}
	}
	return c
}

func TestFind(t *testing.T) {
	dockerDir, err := filepath.Abs(filepath.Join("testdata", "docker", "containers", dockerID))
	if err != nil {
		t.Fatal(err)
	}
	plain := &Config{}
	tests := []struct {
		name    string
		state   *State
		config  *Config
		want    labelled
		wantErr string
	}{
		{name: "state annotation", state: &State{ID: "a", Bundle: "/b", Annotations: map[string]string{Key: "file:///s.json"}},
			config: plain, want: labelled{"file:///s.json", FromState}},
		{name: "config annotation", state: &State{ID: "a", Bundle: "/b"},
			config: &Config{Annotations: map[string]string{Key: "/s.json"}}, want: labelled{"/s.json", FromConfig}},
		{name: "state wins", state: &State{ID: "a", Bundle: "/b", Annotations: map[string]string{Key: "one"}},
			config: &Config{Annotations: map[string]string{Key: "two"}}, want: labelled{"one", FromState}},
		{name: "empty value is no label", state: &State{ID: "a", Bundle: "/b", Annotations: map[string]string{Key: ""}},
			config: plain},
		{name: "other annotations", state: &State{ID: "a", Bundle: "/b", Annotations: map[string]string{"credentialspecs": "x", "io.kubernetes.cri.container-name": "web"}},
			config: plain},
		{name: "docker label", state: &State{ID: dockerID, Bundle: "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/" + dockerID},
			config: dockerConfigJSON(t, filepath.Join(dockerDir, "hostname")),
			want:   labelled{"file:///var/lib/gmsa-hook-test/credspecs/webapp01-domainless.json", FromDocker}},
		{name: "docker label, real config.json", state: &State{ID: dockerID, Bundle: "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/" + dockerID},
			config: realDockerConfig(t, dockerDir),
			want:   labelled{"file:///var/lib/gmsa-hook-test/credspecs/webapp01-domainless.json", FromDocker}},
		{name: "docker config of another container", state: &State{ID: "other", Bundle: "/b"},
			config: dockerConfigJSON(t, filepath.Join(dockerDir, "hostname"))},
		{name: "hostname mount without config.v2.json", state: &State{ID: "a", Bundle: "/b"},
			config: dockerConfigJSON(t, "/nonexistent/a/hostname")},
		{name: "hostname mount of another name", state: &State{ID: dockerID, Bundle: "/b"},
			config: dockerConfigJSON(t, filepath.Join(dockerDir, "hosts"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Request{}
			got, err := r.find(context.Background(), tt.state, tt.config)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("find = %+v, want %+v", got, tt.want)
			}
		})
	}
}

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
		ns, ok := containerdNamespace(tt.bundle, tt.id)
		if ns != tt.ns || ok != tt.ok {
			t.Errorf("containerdNamespace(%q, %q) = %q, %v; want %q, %v", tt.bundle, tt.id, ns, ok, tt.ns, tt.ok)
		}
	}
}

// fakeContainerd answers Containers/Get over HTTP/2 without TLS, as
// containerd's gRPC server does on its unix socket.
func fakeContainerd(t *testing.T, containers map[string]map[string]string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/containerd.services.containers.v1.Containers/Get" || r.Header.Get("Content-Type") != "application/grpc" {
			w.Header().Set("Grpc-Status", "12")
			w.WriteHeader(http.StatusOK)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var id string
		_ = protoFields(body[5:], func(f int, v []byte) error {
			if f == 1 {
				id = string(v)
			}
			return nil
		})
		labels, ok := containers[r.Header.Get("containerd-namespace")+"/"+id]
		w.Header().Set("Content-Type", "application/grpc")
		if !ok {
			w.Header().Set("Grpc-Status", "5")
			w.Header().Set("Grpc-Message", "container \""+id+"\" in namespace \""+r.Header.Get("containerd-namespace")+"\": not found")
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		var c []byte
		c = append(c, protoString(1, id)...)
		for k, v := range labels {
			entry := append(protoString(1, k), protoString(2, v)...)
			c = binary.AppendUvarint(append(c, 2<<3|2), uint64(len(entry)))
			c = append(c, entry...)
		}
		c = append(c, protoString(3, "docker.io/library/busybox:latest")...)
		c = append(c, 8<<3|0, 0x96, 0x01) // a varint field
		msg := binary.AppendUvarint([]byte{1<<3 | 2}, uint64(len(c)))
		w.Write(grpcFrame(append(msg, c...)))
		w.Header().Set("Grpc-Status", "0")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestContainerdLabels(t *testing.T) {
	sock := fakeContainerd(t, map[string]map[string]string{
		"default/web1": {Key: "file:///etc/gmsa/w.json", "nerdctl/name": "web1"},
		"k8s.io/web2":  {},
	})
	ctx := context.Background()
	got, err := containerdLabels(ctx, sock, "default", "web1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{Key: "file:///etc/gmsa/w.json", "nerdctl/name": "web1"}, got); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got, err := containerdLabels(ctx, sock, "k8s.io", "web2"); err != nil || len(got) != 0 {
		t.Errorf("labels = %v, %v; want none", got, err)
	}
	_, err = containerdLabels(ctx, sock, "default", "web3")
	want := `read labels of default/web3 from containerd at ` + sock + `: containerd did not answer: grpc status 5: container "web3" in namespace "default": not found`
	if err == nil || err.Error() != want || !errors.Is(err, ErrContainerd) {
		t.Errorf("err = %v, want %q", err, want)
	}
	_, err = containerdLabels(ctx, filepath.Join(t.TempDir(), "none.sock"), "default", "web1")
	if err == nil || !errors.Is(err, ErrContainerd) || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("err = %v, want ErrContainerd and no such file", err)
	}

	// Through find, with the socket from the request.
	r := &Request{ContainerdAddress: sock}
	lab, err := r.find(ctx, &State{ID: "web1", Bundle: "/run/containerd/io.containerd.runtime.v2.task/default/web1"}, &Config{})
	if err != nil || lab != (labelled{"file:///etc/gmsa/w.json", FromContainerd}) {
		t.Errorf("find = %+v, %v", lab, err)
	}
}

func TestParseGetContainerResponse(t *testing.T) {
	for name, frame := range map[string][]byte{
		"short":      {0, 0, 0},
		"compressed": {1, 0, 0, 0, 0},
		"length":     {0, 0, 0, 0, 9, 1},
		"bad tag":    {0, 0, 0, 0, 1, 0x80},
		"overlong":   {0, 0, 0, 0, 2, 1<<3 | 2, 5},
		"wire 3":     {0, 0, 0, 0, 1, 1<<3 | 3},
	} {
		if _, err := parseGetContainerResponse(frame); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestShimAddress(t *testing.T) {
	// The test binary's parents are no containerd shim.
	if got := shimAddress(); got != DefaultContainerdAddress {
		t.Errorf("shimAddress = %q, want the default", got)
	}
	if p := parentOf(os.Getpid()); p != os.Getppid() {
		t.Errorf("parentOf(self) = %d, want %d", p, os.Getppid())
	}
}
