package bgp

import (
	"context"
	"log/slog"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// logAdapter writes gobgp's log through the daemon's logger. gobgp reports each session's state changes at
// Info; its Fatal and Panic mean a bug in it, logged as errors rather than ending the daemon.
type logAdapter struct{ log *slog.Logger }

func (l logAdapter) attrs(fields gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(fields)+2)
	out = append(out, "component", "bgp")
	for k, v := range fields {
		out = append(out, k, v)
	}
	return out
}

func (l logAdapter) Panic(msg string, f gobgplog.Fields) { l.log.Error(msg, l.attrs(f)...) }
func (l logAdapter) Fatal(msg string, f gobgplog.Fields) { l.log.Error(msg, l.attrs(f)...) }
func (l logAdapter) Error(msg string, f gobgplog.Fields) { l.log.Error(msg, l.attrs(f)...) }
func (l logAdapter) Warn(msg string, f gobgplog.Fields)  { l.log.Warn(msg, l.attrs(f)...) }
func (l logAdapter) Info(msg string, f gobgplog.Fields)  { l.log.Info(msg, l.attrs(f)...) }
func (l logAdapter) Debug(msg string, f gobgplog.Fields) { l.log.Debug(msg, l.attrs(f)...) }

// SetLevel is ignored: the daemon's handler decides what is written.
func (l logAdapter) SetLevel(gobgplog.LogLevel) {}

// GetLevel lets gobgp build debug messages only when they would be written.
func (l logAdapter) GetLevel() gobgplog.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}
