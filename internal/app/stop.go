package app

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// stopper watches for the signals that stop git-sync (SIGTERM, SIGINT).
// The first one ends ctx: git-sync stops cleanly (running git and hooks
// are killed, hooks are waited for, the HTTP endpoint shuts down) and exits
// 0. Those steps are bounded but can take a few seconds; a second signal
// is the operator saying "now", and is delivered on forced so that Main can
// return at once.
type stopper struct {
	ctx    context.Context
	forced <-chan syscall.Signal
	stop   func()
}

// watchStop starts watching; call stop to let the signals go.
func watchStop(log *slog.Logger) stopper {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancel(context.Background())
	forced := make(chan syscall.Signal, 1)
	quit := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Info("stopping on signal; a second one exits at once", "signal", sig.String())
			cancel()
		case <-quit:
			return
		}
		select {
		case sig := <-sigs:
			forced <- sig.(syscall.Signal)
		case <-quit:
		}
	}()
	return stopper{ctx: ctx, forced: forced, stop: func() {
		signal.Stop(sigs)
		close(quit)
		cancel()
	}}
}

// forcedExitStatus is the exit status after a second stop signal: 128 plus
// the signal's number (143 for SIGTERM, 130 for SIGINT), the convention of
// shells and container runtimes for "ended by that signal". It tells the
// forced exit apart from a clean stop (0) and from a failure (1), and says
// that the cleanup did not finish.
func forcedExitStatus(sig syscall.Signal) int { return 128 + int(sig) }
