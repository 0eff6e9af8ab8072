package ecs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"

	pb "github.com/gmsa-hook/gmsa-hook/ecs/credentialsfetcher"
)

// DefaultSocket is where the ECS agent looks for credentials-fetcher
// (ecs-init's default; CREDENTIALS_FETCHER_HOST overrides it there).
const DefaultSocket = "/var/credentials-fetcher/socket/credentials_fetcher.sock"

// DefaultIdle is how long Serve waits with no call in flight before it
// returns.
const DefaultIdle = 30 * time.Second

// ErrListen marks a socket that cannot be had.
var ErrListen = errors.New("cannot listen on the socket")

// Listener is the socket to serve: the one systemd passed (LISTEN_FDS=1
// for this process, on fd 3), else a new one at path, replacing a stale
// socket file. inherited says which.
func Listener(path string) (l net.Listener, inherited bool, err error) {
	if pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID")); pid == os.Getpid() && os.Getenv("LISTEN_FDS") == "1" {
		// Not passed on to children.
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
		f := os.NewFile(3, "systemd socket")
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, true, fmt.Errorf("%w: the socket systemd passed on fd 3: %v", ErrListen, err)
		}
		return l, true, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, fmt.Errorf("%w %s: %v", ErrListen, path, err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// A socket left by a process that is gone: one that still serves
		// would answer.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, false, fmt.Errorf("%w %s: another process serves it", ErrListen, path)
		}
		os.Remove(path)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, false, fmt.Errorf("%w %s: %v", ErrListen, path, err)
	}
	// Root's, as the agent (root) expects; nobody else may ask for tickets.
	if err := os.Chmod(path, 0o660); err != nil {
		ul.Close()
		return nil, false, fmt.Errorf("%w %s: %v", ErrListen, path, err)
	}
	return ul, false, nil
}

// Serve answers calls on l until no call has been in flight for idle (or
// ctx is done), then stops gracefully and returns. A connection held open
// with no call in flight does not keep it: the agent dials anew per call.
// idle <= 0 means serve until ctx is done.
func Serve(ctx context.Context, l net.Listener, srv pb.CredentialsFetcherServiceServer, idle time.Duration) error {
	t := &tracker{wake: make(chan struct{}, 1)}
	g := grpc.NewServer(grpc.UnaryInterceptor(t.intercept))
	pb.RegisterCredentialsFetcherServiceServer(g, srv)
	done := make(chan error, 1)
	go func() { done <- g.Serve(l) }()
	var timer *time.Timer
	var fire <-chan time.Time
	arm := func() {
		if idle <= 0 {
			return
		}
		if timer == nil {
			timer = time.NewTimer(idle)
		} else {
			timer.Reset(idle)
		}
		fire = timer.C
	}
	arm()
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			g.GracefulStop()
			return <-done
		case <-t.wake:
			// A call started or ended: the idle time counts from the end
			// of the last one.
			if t.busy() {
				if timer != nil {
					timer.Stop()
				}
				fire = nil
			} else {
				arm()
			}
		case <-fire:
			if t.busy() {
				fire = nil
				continue
			}
			g.GracefulStop()
			return <-done
		}
	}
}

// tracker counts calls in flight.
type tracker struct {
	mu       sync.Mutex
	inFlight int
	wake     chan struct{}
}

func (t *tracker) busy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight > 0
}

func (t *tracker) add(n int) {
	t.mu.Lock()
	t.inFlight += n
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *tracker) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	t.add(1)
	defer t.add(-1)
	return h(ctx, req)
}
