// Package child runs a test server (Ory Hydra, the Temporal dev server) as a child process on
// free loopback ports: started with its output in a log file, stopped with SIGTERM and then
// SIGKILL, started again on new ports when another suite took one first. Tests only.
package child

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrPortTaken: a port was taken before the server could bind it; RetryOnPortTaken tries again.
var ErrPortTaken = errors.New("a port was taken before the server could bind it")

// Proc is a running child process.
type Proc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
	logPath string
}

// Start runs bin with args and exactly env, its output going to logPath.
func Start(bin string, args, env []string, logPath string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Proc{cmd: exec.Command(bin, args...), exited: make(chan struct{}), logFile: f, logPath: logPath}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Exited is closed when the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Stop ends the process (SIGTERM, then SIGKILL after 10 s) and closes its log.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.logFile.Close()
}

// Log is the process's output so far, for a failing test to show.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// StartFailed is the error of a server that did not become ready: ErrPortTaken when its log
// says a port was in use, else err with the end of its log.
func (p *Proc) StartFailed(name string, err error) error {
	log := p.Log()
	if strings.Contains(log, "address already in use") {
		return ErrPortTaken
	}
	if len(log) > 2000 {
		log = log[len(log)-2000:]
	}
	return fmt.Errorf("%w; the end of %s's log (%s):\n%s", err, name, p.logPath, log)
}

// RetryOnPortTaken runs start up to three times while it fails for a port taken meanwhile.
func RetryOnPortTaken[T any](start func() (T, error)) (T, error) {
	var (
		s   T
		err error
	)
	for attempt := 0; attempt < 3; attempt++ {
		if s, err = start(); !errors.Is(err, ErrPortTaken) {
			return s, err
		}
	}
	return s, err
}

// FreePort is a loopback port free now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
