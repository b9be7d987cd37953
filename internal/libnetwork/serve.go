package libnetwork

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

const (
	// shutdownTimeout bounds how long in-flight driver calls may finish
	// after the serve context is cancelled.
	shutdownTimeout = 5 * time.Second
	// readHeaderTimeout drops connections that never send a request; it
	// does not limit slow driver calls, which Docker waits for forever.
	readHeaderTimeout = 30 * time.Second
	// socketMode lets root (Docker) and the socket's group connect.
	socketMode = 0o660
)

// Serve listens on socketPath and serves h until ctx is cancelled. It is
// Listen followed by ServeListener.
func Serve(ctx context.Context, socketPath string, h http.Handler) error {
	l, err := Listen(socketPath)
	if err != nil {
		return err
	}
	return ServeListener(ctx, l, h)
}

// Listen creates a unix socket that only root and its group reach (mode
// 0660): a plugin socket, which a caller can make appear before slow
// start-up work (Docker retries a missing socket for only ~15 s
// but waits on a listening one). It creates the parent directory, replaces a
// stale socket left by a crashed run, and refuses to replace anything else,
// including a socket another process still serves. Closing the returned
// listener removes the socket file.
func Listen(socketPath string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o755); err != nil {
		return nil, fmt.Errorf("creating the folder of socket %s: %w", socketPath, err)
	}
	if err := removeStaleSocket(socketPath); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("listening on socket %s: %w", socketPath, err)
	}
	if err := os.Chmod(socketPath, socketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the mode of socket %s: %w", socketPath, err)
	}
	return l, nil
}

// removeStaleSocket deletes path if it is a socket nobody listens on. A
// leftover socket makes Docker stall on every plugin scan (moby/moby#22653).
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("socket path %s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("socket %s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	return nil
}

// ServeListener serves h on l until ctx is cancelled, then waits up to 5 s
// for in-flight calls before closing connections. Request contexts keep
// ctx's values but are cancelled only by their client going away (or the
// forced close), so that graceful shutdown can let driver calls finish. l is
// closed on return; a listener from Listen thereby removes its socket file.
// It returns nil after a clean shutdown.
func ServeListener(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	select {
	case err := <-served:
		// Accept failed; drop connections still open rather than leak them.
		return errors.Join(fmt.Errorf("serving plugin socket: %w", err), srv.Close())
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		err = errors.Join(fmt.Errorf("plugin server did not stop within %v: %w", shutdownTimeout, err), srv.Close())
	}
	<-served
	return err
}
