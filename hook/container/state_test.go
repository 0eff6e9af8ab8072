package container

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"web1": true, "3f2a1c0d9e8b": true, "a_b+c-d.e": true, "...": true,
		"": false, ".": false, "..": false, "a/b": false, "../x": false, "a b": false,
		"a\x00": false, "é": false, strings.Repeat("a", 255): true, strings.Repeat("a", 256): false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestParseState(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *State
		wantErr string
	}{
		{
			name: "runc createRuntime",
			in:   `{"ociVersion":"1.0.2-dev","id":"web1","status":"creating","pid":4242,"bundle":"/b/web1","annotations":{"credentialspec":"file:///etc/gmsa/w.json"}}`,
			want: &State{ID: "web1", Status: "creating", Pid: 4242, Bundle: "/b/web1", Annotations: map[string]string{"credentialspec": "file:///etc/gmsa/w.json"}},
		},
		{
			name: "crun createContainer",
			in:   `{"ociVersion":"1.0.0","id":"web1","status":"created","pid":0,"bundle":"/b/web1/"}`,
			want: &State{ID: "web1", Status: "created", Bundle: "/b/web1"},
		},
		{name: "not json", in: `hello`, wantErr: `not an OCI container state: invalid character 'h' looking for beginning of value`},
		{name: "empty", in: ``, wantErr: `not an OCI container state: unexpected end of JSON input`},
		{name: "no id", in: `{"bundle":"/b"}`, wantErr: `not an OCI container state: no container id`},
		{name: "id with slash", in: `{"id":"../../etc","bundle":"/b"}`, wantErr: `not an OCI container state: container id "../../etc" is not [A-Za-z0-9_+.-]+`},
		{name: "dot dot", in: `{"id":"..","bundle":"/b"}`, wantErr: `not an OCI container state: container id ".." is not [A-Za-z0-9_+.-]+`},
		{name: "relative bundle", in: `{"id":"a","bundle":"b"}`, wantErr: `not an OCI container state: bundle "b" is not an absolute path`},
		{name: "pid type", in: `{"id":"a","bundle":"/b","pid":"1"}`, wantErr: `not an OCI container state: key "pid": want int`},
		{name: "negative pid", in: `{"id":"a","bundle":"/b","pid":-1}`, wantErr: `not an OCI container state: negative pid -1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseState([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrState) {
					t.Fatalf("err = %v, want %q (ErrState)", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRootfs(t *testing.T) {
	tests := []struct {
		name, config, want, wantErr string
	}{
		{name: "relative", config: `{"root":{"path":"rootfs"}}`, want: "/b/x/rootfs"},
		{name: "absolute", config: `{"root":{"path":"/var/lib/c/merged/"}}`, want: "/var/lib/c/merged"},
		{name: "dot dot", config: `{"root":{"path":"../r"}}`, want: "/b/r"},
		{name: "none", config: `{}`, wantErr: "unusable bundle config.json: no root.path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Rootfs("/b/x")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Rootfs = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestOwner(t *testing.T) {
	userns := `"namespaces":[{"type":"pid"},{"type":"user"}]`
	tests := []struct {
		name, config string
		want         Owner
		wantErr      string
	}{
		{name: "root", config: `{"process":{"user":{"uid":0,"gid":0}}}`, want: Owner{0, 0}},
		{name: "no process", config: `{}`, want: Owner{0, 0}},
		{name: "app user", config: `{"process":{"user":{"uid":1000,"gid":1000,"additionalGids":[10]}}}`, want: Owner{1000, 1000}},
		{name: "mappings without user namespace are ignored",
			config: `{"process":{"user":{"uid":1000,"gid":1000}},"linux":{"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}]}}`,
			want:   Owner{1000, 1000}},
		{name: "mapped root",
			config: `{"process":{"user":{"uid":0,"gid":0}},"linux":{` + userns + `,"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":200000,"size":65536}]}}`,
			want:   Owner{100000, 200000}},
		{name: "mapped user, second range",
			config: `{"process":{"user":{"uid":1000,"gid":1001}},"linux":{` + userns + `,"uidMappings":[{"containerID":0,"hostID":5000,"size":1},{"containerID":1,"hostID":100001,"size":65535}],"gidMappings":[{"containerID":0,"hostID":100000,"size":65536}]}}`,
			want:   Owner{101000, 101001}},
		{name: "unmapped uid",
			config:  `{"process":{"user":{"uid":1000,"gid":0}},"linux":{` + userns + `,"uidMappings":[{"containerID":0,"hostID":100000,"size":1000}],"gidMappings":[{"containerID":0,"hostID":100000,"size":1000}]}}`,
			wantErr: "user 1000: uid not mapped to a host ID"},
		{name: "unmapped gid",
			config:  `{"process":{"user":{"uid":0,"gid":5000}},"linux":{` + userns + `,"uidMappings":[{"containerID":0,"hostID":100000,"size":1000}],"gidMappings":[{"containerID":0,"hostID":100000,"size":1000}]}}`,
			wantErr: "group 5000: gid not mapped to a host ID"},
		{name: "overflow", config: `{"process":{"user":{"uid":1,"gid":0}},"linux":{` + userns + `,"uidMappings":[{"containerID":0,"hostID":4294967294,"size":2}],"gidMappings":[{"containerID":0,"hostID":0,"size":1}]}}`,
			wantErr: "user 1: uid not mapped to a host ID"},
		{name: "joined user namespace without pid",
			config:  `{"linux":{` + userns + `}}`,
			wantErr: "user 0: not mapped to a host ID: user namespace without uidMappings and no container pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Owner(0)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrUnmapped) {
					t.Fatalf("err = %v, want %q (ErrUnmapped)", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Owner = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOwnerFromProc(t *testing.T) {
	// This process's own maps: in the initial user namespace, the identity.
	c, err := ParseConfig([]byte(`{"process":{"user":{"uid":1000,"gid":1000}},"linux":{"namespaces":[{"type":"user","path":"/proc/1/ns/user"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := readIDMap("/proc/self/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || m[0] != (IDMapping{0, 0, 4294967295}) {
		t.Skipf("not in the initial user namespace: %v", m)
	}
	got, err := c.Owner(1)
	if err != nil || got != (Owner{1000, 1000}) {
		t.Errorf("Owner = %+v, %v; want {1000 1000}", got, err)
	}
}

func TestParseIDMap(t *testing.T) {
	got, err := parseIDMap([]byte("         0     100000      65536\n     65536    5000          1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []IDMapping{{0, 100000, 65536}, {65536, 5000, 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"0 1\n", "0 1 x\n", "0 1 4294967296\n"} {
		if _, err := parseIDMap([]byte(bad)); err == nil {
			t.Errorf("parseIDMap(%q) succeeded", bad)
		}
	}
}

// TestReadStateBounded: stdin beyond MaxState is refused, not read on.
func TestReadStateBounded(t *testing.T) {
	big := `{"id":"a","bundle":"/b","annotations":{"x":"` + strings.Repeat("y", MaxState) + `"}}`
	_, err := ReadState(strings.NewReader(big))
	if want := "not an OCI container state: larger than 1048576 bytes"; err == nil || err.Error() != want || !errors.Is(err, ErrState) {
		t.Errorf("err = %v, want %q", err, want)
	}
	st, err := ReadState(strings.NewReader(`{"id":"a","bundle":"/b"}`))
	if err != nil || st.ID != "a" {
		t.Errorf("ReadState = %+v, %v", st, err)
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSmall(file); err == nil || err.Error() != file+" is larger than 1048576 bytes" {
		t.Errorf("ReadSmall: %v", err)
	}
}
