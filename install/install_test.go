package install

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var testHooks = Hooks{Binary: "/usr/local/bin/gmsa-hook", Config: "/etc/gmsa-hook/config.json", FetchTimeout: 20 * time.Second}

func TestAddGolden(t *testing.T) {
	tests := []struct {
		name, in string
		hooks    Hooks
	}{
		{"runc-spec", "runc-spec.json", testHooks},
		{"runc-spec-no-config", "runc-spec.json", Hooks{Binary: "/usr/local/bin/gmsa-hook", FetchTimeout: 7500 * time.Millisecond}},
		{"other-hooks", "other-hooks.json", testHooks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got := add(t, in, tt.hooks)
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("config.json differs from %s (run go test -update):\n%s", golden, got)
			}
			// Idempotent: a second install changes nothing.
			if again := add(t, got, tt.hooks); !bytes.Equal(again, got) {
				t.Errorf("a second install changed config.json:\n%s", again)
			}
		})
	}
}

func add(t *testing.T, in []byte, h Hooks) []byte {
	t.Helper()
	spec, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Add(spec); err != nil {
		t.Fatal(err)
	}
	out, err := Encode(spec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAddErrors(t *testing.T) {
	tests := []struct {
		name, config string
		hooks        Hooks
		want         string
	}{
		{"relative binary", `{}`, Hooks{Binary: "gmsa-hook"}, `cannot add hooks to the bundle: the hook binary "gmsa-hook" is not an absolute path`},
		{"relative config", `{}`, Hooks{Binary: "/b", Config: "c.json"}, `cannot add hooks to the bundle: the config file "c.json" is not an absolute path`},
		{"hooks not an object", `{"hooks":[]}`, testHooks, `cannot add hooks to the bundle: "hooks" is not an object`},
		{"stage not a list", `{"hooks":{"poststop":{}}}`, testHooks, `cannot add hooks to the bundle: "hooks.poststop" is not a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Decode([]byte(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			err = tt.hooks.Add(spec)
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrBundle) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	for _, bad := range []string{``, `null`, `[]`, `{} {}`, `{"a":`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
}

func TestBundle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	in, err := os.ReadFile(filepath.Join("testdata", "runc-spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, in, 0o640); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Bundle(dir, testHooks); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(path)
	want, _ := os.ReadFile(filepath.Join("testdata", "runc-spec.golden"))
	if !bytes.Equal(got, want) {
		t.Errorf("config.json:\n%s", got)
	}
	fi, _ := os.Stat(path)
	if fi.Mode() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left in the bundle: %v", entries)
	}

	err = Bundle(filepath.Join(dir, "none"), testHooks)
	want2 := "cannot add hooks to the bundle " + filepath.Join(dir, "none") + ": stat " + filepath.Join(dir, "none", "config.json") + ": no such file or directory"
	if err == nil || err.Error() != want2 || !errors.Is(err, ErrBundle) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v\nwant  %s", err, want2)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Bundle(dir, testHooks)
	if want := "cannot add hooks to the bundle: " + path + ": unexpected EOF"; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
}

func FuzzAdd(f *testing.F) {
	for _, name := range []string{"runc-spec.json", "other-hooks.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := Decode(b)
		if err != nil {
			return
		}
		if err := testHooks.Add(spec); err != nil {
			return
		}
		once, err := Encode(spec)
		if err != nil {
			t.Fatal(err)
		}
		spec2, err := Decode(once)
		if err != nil {
			t.Fatal(err)
		}
		if err := testHooks.Add(spec2); err != nil {
			t.Fatal(err)
		}
		twice, err := Encode(spec2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent:\n%s\n%s", once, twice)
		}
	})
}
