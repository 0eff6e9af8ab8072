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

	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/google/go-cmp/cmp"
)

const dockerID = "e2eb1e974503daccc9e19ea4feb66079c7614f049e56232d38c2b50f7aca1994"

func dockerConfigJSON(t *testing.T, hostnameSource string) *container.Config {
	t.Helper()
	c, err := container.ParseConfig([]byte(`{"root":{"path":"/var/lib/docker/overlay2/x/merged"},"annotations":null,"mounts":[
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
func realDockerConfig(t *testing.T, dockerDir string) *container.Config {
	t.Helper()
	b, err := os.ReadFile("testdata/config-docker.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.ParseConfig(b)
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
	plain := &container.Config{}
	tests := []struct {
		name    string
		state   *container.State
		config  *container.Config
		want    container.Label
		wantErr string
	}{
		{name: "state annotation", state: &container.State{ID: "a", Bundle: "/b", Annotations: map[string]string{container.Key: "file:///s.json"}},
			config: plain, want: container.Label{Source: "file:///s.json", Origin: container.FromState}},
		{name: "config annotation", state: &container.State{ID: "a", Bundle: "/b"},
			config: &container.Config{Annotations: map[string]string{container.Key: "/s.json"}}, want: container.Label{Source: "/s.json", Origin: container.FromConfig}},
		{name: "state wins", state: &container.State{ID: "a", Bundle: "/b", Annotations: map[string]string{container.Key: "one"}},
			config: &container.Config{Annotations: map[string]string{container.Key: "two"}}, want: container.Label{Source: "one", Origin: container.FromState}},
		{name: "empty value is no label", state: &container.State{ID: "a", Bundle: "/b", Annotations: map[string]string{container.Key: ""}},
			config: plain},
		{name: "other annotations", state: &container.State{ID: "a", Bundle: "/b", Annotations: map[string]string{"credentialspecs": "x", "io.kubernetes.cri.container-name": "web"}},
			config: plain},
		{name: "docker label", state: &container.State{ID: dockerID, Bundle: "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/" + dockerID},
			config: dockerConfigJSON(t, filepath.Join(dockerDir, "hostname")),
			want:   container.Label{Source: "file:///var/lib/gmsa-hook-test/credspecs/webapp01-domainless.json", Origin: container.FromDocker}},
		{name: "docker label, real config.json", state: &container.State{ID: dockerID, Bundle: "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/" + dockerID},
			config: realDockerConfig(t, dockerDir),
			want:   container.Label{Source: "file:///var/lib/gmsa-hook-test/credspecs/webapp01-domainless.json", Origin: container.FromDocker}},
		{name: "docker config of another container", state: &container.State{ID: "other", Bundle: "/b"},
			config: dockerConfigJSON(t, filepath.Join(dockerDir, "hostname"))},
		{name: "hostname mount without config.v2.json", state: &container.State{ID: "a", Bundle: "/b"},
			config: dockerConfigJSON(t, "/nonexistent/a/hostname")},
		{name: "hostname mount of another name", state: &container.State{ID: dockerID, Bundle: "/b"},
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
			if got.Source != tt.want.Source || got.Origin != tt.want.Origin {
				t.Errorf("find = %+v, want %+v", got, tt.want)
			}
		})
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
		c = append(c, 8<<3, 0x96, 0x01) // field 8, a varint (wire type 0)
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
		"default/web1": {container.Key: "file:///etc/gmsa/w.json", "nerdctl/name": "web1"},
		"k8s.io/web2":  {},
	})
	ctx := context.Background()
	got, err := containerdLabels(ctx, sock, "default", "web1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{container.Key: "file:///etc/gmsa/w.json", "nerdctl/name": "web1"}, got); diff != "" {
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
	lab, err := r.find(ctx, &container.State{ID: "web1", Bundle: "/run/containerd/io.containerd.runtime.v2.task/default/web1"}, &container.Config{})
	if err != nil || lab.Source != "file:///etc/gmsa/w.json" || lab.Origin != container.FromContainerd {
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
