package bgp

import (
	"context"
	"log/slog"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// levelHandler writes the speaker's records at or above its own level (logSeverityScreen), whatever the
// daemon's level: calico/node's BIRD too logs by the BGP configuration, not by Felix's.
type levelHandler struct {
	slog.Handler
	level slog.Leveler
}

func (h levelHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(attrs), h.level}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.level}
}

// logAdapter writes gobgp's log through the speaker's logger. gobgp reports each session's state changes at
// Info; its Fatal and Panic mean a bug in it, logged as errors rather than ending the daemon.
type logAdapter struct{ log *slog.Logger }

func attrs(fields gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		out = append(out, k, v)
	}
	return out
}

func (l logAdapter) Panic(msg string, f gobgplog.Fields) { l.log.Error(msg, attrs(f)...) }
func (l logAdapter) Fatal(msg string, f gobgplog.Fields) { l.log.Error(msg, attrs(f)...) }
func (l logAdapter) Error(msg string, f gobgplog.Fields) { l.log.Error(msg, attrs(f)...) }
func (l logAdapter) Warn(msg string, f gobgplog.Fields)  { l.log.Warn(msg, attrs(f)...) }
func (l logAdapter) Info(msg string, f gobgplog.Fields)  { l.log.Info(msg, attrs(f)...) }
func (l logAdapter) Debug(msg string, f gobgplog.Fields) { l.log.Debug(msg, attrs(f)...) }

// SetLevel is ignored: the Plan's LogLevel decides what is written.
func (l logAdapter) SetLevel(gobgplog.LogLevel) {}

// GetLevel lets gobgp build debug messages only when they would be written.
func (l logAdapter) GetLevel() gobgplog.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}
