package container

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"ociVersion":"1.0.2-dev","id":"web1","status":"creating","pid":4242,"bundle":"/b/web1","annotations":{"credentialspec":"file:///etc/gmsa/w.json"}}`))
	f.Add([]byte(`{"ociVersion":"1.0.0","id":"web1","status":"created","pid":0,"bundle":"/b/web1/"}`))
	f.Add([]byte(`{"id":"..","bundle":"/"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(b)
		if err != nil {
			if s != nil {
				t.Fatal("state beside an error")
			}
			return
		}
		if !ValidID(s.ID) || !filepath.IsAbs(s.Bundle) || s.Pid < 0 {
			t.Fatalf("accepted %+v", s)
		}
		dir := Dir("/run/gmsa-hook", s.ID, s.Bundle)
		if name := filepath.Base(dir); filepath.Dir(dir) != "/run/gmsa-hook/containers" || !ValidID(name) || len(name) > 255 {
			t.Fatalf("id %q, bundle %q: directory %q is not one element of the containers directory", s.ID, s.Bundle, dir)
		}
		// Round trip.
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ParseState(out)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, s2); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"../testdata/config-runc.json", "../testdata/config-docker.json"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"process":{"user":{"uid":1000,"gid":1000}},"linux":{"namespaces":[{"type":"user"}],"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":100000,"size":65536}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			if c != nil {
				t.Fatal("config beside an error")
			}
			return
		}
		if r, err := c.Rootfs("/b"); err == nil && !filepath.IsAbs(r) {
			t.Fatalf("relative rootfs %q", r)
		}
		if o, err := c.Owner(0); err == nil && (o.UID < 0 || o.GID < 0 || o.UID >= 1<<32-1 || o.GID >= 1<<32-1) {
			t.Fatalf("owner %+v", o)
		}
		dockerContainerDir(c)
	})
}

func FuzzParseIDMap(f *testing.F) {
	f.Add([]byte("         0     100000      65536\n"))
	f.Add([]byte("0 0 4294967295\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseIDMap(b)
		if err != nil && m != nil {
			t.Fatal("mappings beside an error")
		}
		for id := range uint32(3) {
			if h, ok := mapID(m, id); ok && h == 1<<32-1 {
				t.Fatal("mapped to the overflow id")
			}
		}
	})
}

func FuzzDockerConfig(f *testing.F) {
	if b, err := os.ReadFile("../testdata/docker/containers/" + dockerID + "/config.v2.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"ID":"a","Config":{"Labels":{"credentialspec":"x"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseDockerConfig(b)
		if err != nil && c != nil {
			t.Fatal("config beside an error")
		}
	})
}
