package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// tmpfsDir is a directory on a tmpfs of the test's own.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0711,size=4m"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount a tmpfs: %v", err)
		}
		t.Skipf("mount a tmpfs: %v (run as root)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func TestOpenLayout(t *testing.T) {
	dir := tmpfsDir(t)
	s, mounted, err := Open(dir)
	if err != nil || mounted {
		t.Fatalf("Open = %v, mounted %v", err, mounted)
	}
	for _, c := range []struct {
		name string
		mode os.FileMode
	}{{"containers", os.ModeDir | 0o711}, {"cache", os.ModeDir | 0o700}, {"version", 0o644}} {
		fi, err := os.Stat(filepath.Join(s.Dir, c.name))
		if err != nil || fi.Mode() != c.mode {
			t.Errorf("%s: %v, %v; want mode %v", c.name, fi.Mode(), err, c.mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "version")); string(b) != "1\n" {
		t.Errorf("version %q", b)
	}
	// A layout of another version is not used.
	os.WriteFile(filepath.Join(dir, "version"), []byte("2\n"), 0o644)
	_, _, err = Open(dir)
	if want := "unusable run directory: " + dir + `/version says layout version "2"; this gmsa-hook knows 1`; err == nil || err.Error() != want {
		t.Errorf("error\n got %v\nwant %s", err, want)
	}
}

// TestOpenOnDisk: a run directory on a disk gets a tmpfs, unless it holds
// files the tmpfs would hide (they would stay on the disk).
func TestOpenOnDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts need root")
	}
	disk, err := os.MkdirTemp("/var/tmp", "gmsa-store-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(disk) })
	if container.OnMemoryFS(disk) {
		t.Skipf("%s is on a memory file system here", disk)
	}
	os.MkdirAll(filepath.Join(disk, "run", "containers"), 0o711) // an earlier layout, empty
	run := filepath.Join(disk, "run")
	_, mounted, err := Open(run)
	if err != nil || !mounted || !container.OnMemoryFS(run) {
		t.Fatalf("Open(%s) = %v, mounted %v, on tmpfs %v", run, err, mounted, container.OnMemoryFS(run))
	}
	syscall.Unmount(run, syscall.MNT_DETACH)

	os.WriteFile(filepath.Join(run, "containers", "krb5cc"), []byte("x"), 0o600)
	_, _, err = Open(run)
	if err == nil || !strings.Contains(err.Error(), "is on a disk, not a memory file system, and holds files (containers/krb5cc)") || !errors.Is(err, ErrRunDir) {
		t.Errorf("error %v", err)
	}
	if container.OnMemoryFS(run) {
		syscall.Unmount(run, syscall.MNT_DETACH)
		t.Error("mounted over files on the disk")
	}
}

// TestWriteFileKilled: a writer killed at any point leaves the old file or
// the new one, whole, and at worst a temporary file beside it.
func TestWriteFileKilled(t *testing.T) {
	if os.Getenv("GMSA_STORE_WRITER") != "" {
		// The child: replace the file over and over until killed.
		path := os.Getenv("GMSA_STORE_WRITER")
		for i := 0; ; i++ {
			b := []byte(strings.Repeat(string(rune('a'+i%26)), 64<<10))
			if err := WriteFile(path, b, 0o600, -1, -1); err != nil {
				os.Exit(3)
			}
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "krb5cc")
	if err := WriteFile(path, []byte(strings.Repeat("z", 64<<10)), 0o600, -1, -1); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFileKilled$")
		cmd.Env = append(os.Environ(), "GMSA_STORE_WRITER="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Reads while it writes, then a kill wherever it is.
		for range 50 + i*10 {
			b, err := os.ReadFile(path)
			if err != nil || len(b) != 64<<10 || strings.Count(string(b), string(b[0])) != len(b) {
				t.Fatalf("read %d bytes (%v): not a whole file", len(b), err)
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
		t.Errorf("after the kills: %v, %v", fi, err)
	}
}

// TestLock: a second locker waits for the first; one that dies releases
// the lock; a deadline ends the wait with ErrLocked.
func TestLock(t *testing.T) {
	dir := tmpfsDir(t)
	s, _, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := Key("webapp01", "corp.example.test")
	unlock, err := s.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error)
	go func() {
		_, err := s.Lock(ctx, key)
		got <- err
	}()
	cancel()
	if err := <-got; !errors.Is(err, ErrLocked) {
		t.Errorf("locked entry: %v, want ErrLocked", err)
	}
	done := make(chan func())
	go func() {
		u, err := s.Lock(context.Background(), key)
		if err != nil {
			t.Error(err)
		}
		done <- u
	}()
	unlock()
	(<-done)()

	// A holder that dies (here a process killed with the lock held).
	if os.Getenv("GMSA_STORE_LOCKER") != "" {
		if _, err := (&Store{Dir: os.Getenv("GMSA_STORE_LOCKER")}).Lock(context.Background(), key); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Hour)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLock$")
	cmd.Env = append(os.Environ(), "GMSA_STORE_LOCKER="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	u, err := s.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("lock after its holder died: %v", err)
	}
	u()
}

func TestCacheEntries(t *testing.T) {
	s, _, err := Open(tmpfsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{Key: Key("a"), Account: "webapp01$", Realm: "CORP.EXAMPLE.TEST", Expires: time.Unix(1e9, 0).UTC()}
	if err := s.Put(e, []byte("ticket")); err != nil {
		t.Fatal(err)
	}
	got, ticket, err := s.Get(e.Key)
	if err != nil || got.Account != "webapp01$" || string(ticket) != "ticket" || !got.Expires.Equal(e.Expires) {
		t.Fatalf("Get = %+v, %q, %v", got, ticket, err)
	}
	fi, _ := os.Stat(filepath.Join(s.Dir, "cache", e.Key, "krb5cc"))
	if fi.Mode() != 0o600 {
		t.Errorf("cached ticket mode %v", fi.Mode())
	}
	if _, _, err := s.Get("../../etc"); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("Get of a bad key: %v", err)
	}
	if es, _ := s.Entries(); len(es) != 1 {
		t.Errorf("entries %v", es)
	}
	if err := s.Remove(e.Key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(e.Key); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
}

// TestPlaceKeepsBoundKrbdir: Place fills a krbdir that exists already (the
// runtime wrapper made it, and config.json's mount names it) instead of
// replacing it, so the container sees the ticket; what an earlier
// container left there is removed, and its owner becomes the container's.
func TestPlaceKeepsBoundKrbdir(t *testing.T) {
	s, _, err := Open(tmpfsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	m := &Meta{ID: "c1", Bundle: "/b/c1", UID: 1000, GID: 1000}
	dir := s.ContainerDir(m.ID, m.Bundle)
	kd := filepath.Join(dir, container.KrbDir)
	if err := os.MkdirAll(kd, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(kd, "left-behind"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "stale"), []byte("x"), 0o600)
	before, _ := os.Stat(kd)
	if err := s.Place(m, []byte("ticket")); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(kd)
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("krbdir replaced: %v", err)
	}
	if st := after.Sys().(*syscall.Stat_t); st.Uid != 1000 || after.Mode().Perm() != 0o700 {
		t.Errorf("krbdir uid %d mode %v, want 1000 0700", st.Uid, after.Mode().Perm())
	}
	entries, _ := os.ReadDir(kd)
	if len(entries) != 1 || entries[0].Name() != TicketFile {
		t.Errorf("krbdir holds %v, want only %s", entries, TicketFile)
	}
	if _, err := os.Lstat(filepath.Join(dir, "stale")); !os.IsNotExist(err) {
		t.Errorf("a stale file stayed: %v", err)
	}
	if _, err := ReadMeta(dir); err != nil {
		t.Errorf("meta.json: %v", err)
	}
}
