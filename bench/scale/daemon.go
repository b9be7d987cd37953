package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/daemon"
)

// daemonUnderTest is calico-libnetwork as the phase runs it: the real binary, or (for profiles only)
// daemon.Run inside this process.
type daemonUnderTest interface {
	pid() int
	exited() bool
	stop()
	logFile() string
}

type binaryDaemon struct{ *process }

func (d binaryDaemon) logFile() string { return d.log }

func startBinary(binary, dir string, c *cluster) (daemonUnderTest, error) {
	p, err := start("calico-libnetwork", filepath.Join(dir, "daemon.log"), daemonEnv(dir, c), binary)
	if err != nil {
		return nil, err
	}
	return binaryDaemon{p}, nil
}

// inProcess runs daemon.Run in this process so that runtime/pprof sees it. Its memory and CPU figures
// then include the benchmark's own.
type inProcess struct {
	cancel context.CancelFunc
	done   chan struct{}
	log    string
}

func startInProcess(dir string, c *cluster) (daemonUnderTest, error) {
	env := map[string]string{}
	for _, kv := range daemonEnv(dir, c) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg, err := config.Load(func(name string) (string, bool) { v, ok := env[name]; return v, ok })
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "daemon.log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &inProcess{cancel: cancel, done: make(chan struct{}), log: logPath}
	go func() {
		defer close(d.done)
		defer f.Close()
		log := slog.New(slog.NewTextHandler(f, nil))
		if err := daemon.Run(ctx, cfg, "scale-bench", log); err != nil {
			log.Error("calico-libnetwork stopped", "error", err.Error())
		}
	}()
	return d, nil
}

func (d *inProcess) pid() int        { return os.Getpid() }
func (d *inProcess) logFile() string { return d.log }
func (d *inProcess) stop()           { d.cancel(); <-d.done }
func (d *inProcess) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// profiler writes CPU and heap profiles of an in-process daemon into a folder; with no folder it does
// nothing.
type profiler struct {
	dir, phase string
	cpu        *os.File
}

func (p *profiler) startCPU(what string) error {
	if p.dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("%s-cpu-%s.pprof", p.phase, what)))
	if err != nil {
		return err
	}
	p.cpu = f
	return pprof.StartCPUProfile(f)
}

func (p *profiler) stopCPU() {
	if p.cpu != nil {
		pprof.StopCPUProfile()
		p.cpu.Close()
		p.cpu = nil
	}
}

// heap writes the live heap after a collection.
func (p *profiler) heap(what string) error {
	if p.dir == "" {
		return nil
	}
	runtime.GC()
	f, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("%s-heap-%s.pprof", p.phase, what)))
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.WriteHeapProfile(f)
}
