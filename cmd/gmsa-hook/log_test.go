package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAppendLog: the debug log is a regular file of this user's, 0600; a
// symlink (to anything), a FIFO or another user's file is not written, and
// a log that cannot be written fails nothing.
func TestAppendLog(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, log, target string)
		write bool // the line goes to log
	}{
		{name: "new file", setup: func(*testing.T, string, string) {}, write: true},
		{name: "existing file readable by others", setup: func(t *testing.T, log, _ string) {
			if err := os.WriteFile(log, []byte("{}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(log, 0o666); err != nil {
				t.Fatal(err)
			}
		}, write: true},
		{name: "symlink to another file", setup: func(t *testing.T, log, target string) {
			if err := os.Symlink(target, log); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "dangling symlink", setup: func(t *testing.T, log, target string) {
			if err := os.Remove(target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, log); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "fifo", setup: func(t *testing.T, log, _ string) {
			if err := syscall.Mkfifo(log, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "another user's file", setup: func(t *testing.T, log, _ string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a file away")
			}
			if err := os.WriteFile(log, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(log, 1000, 1000); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			log, target := filepath.Join(dir, "hook.log"), filepath.Join(dir, "target")
			if err := os.WriteFile(target, []byte("untouched\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, log, target)
			before, _ := os.Lstat(log)
			appendLog(log, "hook", errors.New("boom"), nil)
			if b, err := os.ReadFile(target); err == nil && string(b) != "untouched\n" {
				t.Errorf("the symlink's target was written: %q", b)
			}
			if fi, err := os.Stat(target); err == nil && fi.Mode().Perm() != 0o644 {
				t.Errorf("the symlink's target is mode %v now", fi.Mode())
			}
			fi, err := os.Lstat(log)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.write {
				if before != nil && (fi.Mode() != before.Mode() || fi.Size() != before.Size()) {
					t.Errorf("log changed: %v %d bytes, was %v %d", fi.Mode(), fi.Size(), before.Mode(), before.Size())
				}
				return
			}
			if fi.Mode() != 0o600 {
				t.Errorf("log mode %v, want 0600", fi.Mode())
			}
			b, _ := os.ReadFile(log)
			if !strings.HasSuffix(string(b), "\n") || !strings.Contains(string(b), `"error":"boom"`) {
				t.Errorf("log holds %q, want the line", b)
			}
		})
	}
}
