package libnetwork

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

const (
	// contentType is what docker/go-plugins-helpers answers with; Docker
	// itself does not check it.
	contentType = "application/vnd.docker.plugins.v1.1+json"
	// maxRequestBytes bounds request bodies: Docker's are a few KiB, and
	// anything far larger is not from Docker.
	maxRequestBytes = 1 << 20
)

// call decodes one request body, runs the driver and returns the value to
// encode as the response.
type call func(ctx context.Context, body []byte) (any, error)

// method is one routable plugin call.
type method struct {
	name     string // e.g. "CreateNetwork", used in error messages
	call     call
	allowGet bool // for `nc`/curl health checks of GetCapabilities
}

// Observer is told how every call to a known method ended (metrics): ok is
// false for any error reply, whether the driver failed or the request was
// refused. Calls to unknown paths are not observed, so method names stay a
// small fixed set.
type Observer func(subsystem, method string, elapsed time.Duration, ok bool)

// handler serves one plugin subsystem; NetworkDriver and IpamDriver differ
// only in their routing tables.
type handler struct {
	subsystem string
	methods   map[string]method // keyed by URL path
	log       *slog.Logger
	observe   Observer
}

// errorResponse is how Docker expects failures to be reported; it reads Err
// from any non-200 reply.
type errorResponse struct {
	Err string
}

// activateResponse answers the /Plugin.Activate handshake.
type activateResponse struct {
	Implements []string
}

// malformedError marks a request that could not be decoded, so that it maps
// to 400 instead of the 500 used for driver failures.
type malformedError struct{ err error }

func (e malformedError) Error() string { return e.err.Error() }

// NewNetworkHandler serves the NetworkDriver protocol for d. The optional
// calls Calico does not use are answered with an empty success unless d
// implements NetworkAllocator or GatewayAllocChecker. A nil log discards; a
// nil observe observes nothing.
func NewNetworkHandler(d NetworkDriver, log *slog.Logger, observe Observer) http.Handler {
	allocate := constant[AllocateNetworkRequest](&AllocateNetworkResponse{Options: map[string]string{}})
	free := constant[FreeNetworkRequest](&struct{}{})
	if a, ok := d.(NetworkAllocator); ok {
		allocate = withRequest(a.AllocateNetwork)
		free = withRequestOnly(a.FreeNetwork)
	}
	gwCheck := constant[GwAllocCheckRequest](&GwAllocCheckResponse{})
	if g, ok := d.(GatewayAllocChecker); ok {
		gwCheck = withRequest(g.GwAllocCheck)
	}
	return newHandler(networkSubsystem, log, observe, map[string]call{
		"GetCapabilities":             withoutRequest(d.GetCapabilities),
		"CreateNetwork":               withRequestOnly(d.CreateNetwork),
		"DeleteNetwork":               withRequestOnly(d.DeleteNetwork),
		"CreateEndpoint":              withRequest(d.CreateEndpoint),
		"DeleteEndpoint":              withRequestOnly(d.DeleteEndpoint),
		"EndpointOperInfo":            withRequest(d.EndpointInfo),
		"Join":                        withRequest(d.Join),
		"Leave":                       withRequestOnly(d.Leave),
		"AllocateNetwork":             allocate,
		"FreeNetwork":                 free,
		"GwAllocCheck":                gwCheck,
		"DiscoverNew":                 constant[DiscoveryNotification](&struct{}{}),
		"DiscoverDelete":              constant[DiscoveryNotification](&struct{}{}),
		"ProgramExternalConnectivity": constant[ProgramExternalConnectivityRequest](&struct{}{}),
		"RevokeExternalConnectivity":  constant[RevokeExternalConnectivityRequest](&struct{}{}),
	})
}

// NewIpamHandler serves the IpamDriver protocol for d. A nil log discards; a
// nil observe observes nothing.
func NewIpamHandler(d IpamDriver, log *slog.Logger, observe Observer) http.Handler {
	return newHandler(ipamSubsystem, log, observe, map[string]call{
		"GetCapabilities":         withoutRequest(d.GetCapabilities),
		"GetDefaultAddressSpaces": withoutRequest(d.GetDefaultAddressSpaces),
		"RequestPool":             withRequest(d.RequestPool),
		"ReleasePool":             withRequestOnly(d.ReleasePool),
		"RequestAddress":          withRequest(d.RequestAddress),
		"ReleaseAddress":          withRequestOnly(d.ReleaseAddress),
	})
}

// newHandler routes /<subsystem>.<name> to calls and adds the activation
// handshake, which announces exactly this subsystem.
func newHandler(subsystem string, log *slog.Logger, observe Observer, calls map[string]call) *handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if observe == nil {
		observe = func(string, string, time.Duration, bool) {}
	}
	h := &handler{subsystem: subsystem, log: log, observe: observe, methods: map[string]method{
		activatePath: activation(subsystem),
	}}
	for name, c := range calls {
		h.methods["/"+subsystem+"."+name] = method{name: name, call: c, allowGet: name == "GetCapabilities"}
	}
	return h
}

// activatePath is the handshake Docker sends before any other call.
const activatePath = "/Plugin.Activate"

// activation answers the handshake, announcing the given subsystems.
func activation(subsystems ...string) method {
	activate := &activateResponse{Implements: subsystems}
	return method{name: "Activate", call: withoutRequest(func(context.Context) (*activateResponse, error) {
		return activate, nil
	})}
}

// withRequest adapts a driver method with a request and a response.
func withRequest[Req, Resp any](fn func(context.Context, *Req) (*Resp, error)) call {
	return func(ctx context.Context, body []byte) (any, error) {
		req := new(Req)
		if err := decode(body, req); err != nil {
			return nil, err
		}
		return result(fn(ctx, req))
	}
}

// withRequestOnly adapts a driver method whose success reply is `{}`.
func withRequestOnly[Req any](fn func(context.Context, *Req) error) call {
	return withRequest(func(ctx context.Context, r *Req) (*struct{}, error) {
		return &struct{}{}, fn(ctx, r)
	})
}

// withoutRequest adapts a driver method that Docker calls with no body; any
// body sent anyway (e.g. curl -d '{}') is ignored.
func withoutRequest[Resp any](fn func(context.Context) (*Resp, error)) call {
	return func(ctx context.Context, _ []byte) (any, error) {
		return result(fn(ctx))
	}
}

// constant validates the request and answers resp without involving the
// driver, for optional calls the driver does not implement. Having nothing to
// act on, it also answers a call resent without its body (see errEmptyBody).
func constant[Req, Resp any](resp *Resp) call {
	return func(_ context.Context, body []byte) (any, error) {
		if len(bytes.TrimSpace(body)) > 0 {
			if err := decode(body, new(Req)); err != nil {
				return nil, err
			}
		}
		return resp, nil
	}
}

// result turns a nil response into `{}` rather than `null`, which not every
// Docker decoder accepts.
func result[Resp any](resp *Resp, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return struct{}{}, nil
	}
	return resp, nil
}

// errEmptyBody refuses a call that arrives without its arguments. Docker sends
// one when a plugin stops while answering: its plugin client retries with the
// request body the first attempt already consumed. Acting on the blank
// request would use empty IDs and pool names.
var errEmptyBody = errors.New("empty body: Docker resends a call without its arguments when the plugin stopped while answering it; run the Docker command again")

// decode refuses an empty body and allows unknown fields, so that newer Docker
// versions keep working.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return malformedError{errEmptyBody}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return malformedError{err}
	}
	return nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m, ok := h.methods[r.URL.Path]
	status := h.serve(w, r, m, ok)
	if ok {
		h.observe(h.subsystem, m.name, time.Since(start), status == http.StatusOK)
	}
}

// serve answers one request for m (known says whether the path routes to
// it) and returns the HTTP status sent.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, m method, known bool) int {
	ctx := r.Context()
	logName := strings.TrimPrefix(r.URL.Path, "/")
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.DebugContext(ctx, "plugin request", "method", logName, "http", r.Method, "body", string(body))
	}

	switch {
	case !known:
		return h.fail(w, r, http.StatusNotFound, "unknown method "+r.URL.Path)
	case r.Method != http.MethodPost && (r.Method != http.MethodGet || !m.allowGet):
		w.Header().Set("Allow", allowed(m))
		return h.fail(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s does not accept HTTP %s", m.name, r.Method))
	case readErr != nil:
		if _, ok := errors.AsType[*http.MaxBytesError](readErr); ok {
			return h.fail(w, r, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("%s request body exceeds %d bytes", m.name, maxRequestBytes))
		}
		return h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("reading %s request: %v", m.name, readErr))
	}

	resp, err := h.invoke(ctx, m, body)
	if err == nil {
		var out []byte
		if out, err = json.Marshal(resp); err == nil {
			return h.send(w, r, http.StatusOK, out)
		}
		err = fmt.Errorf("encoding %s response: %w", m.name, err)
	}
	if bad, ok := errors.AsType[malformedError](err); ok {
		return h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("malformed %s request: %v", m.name, bad.err))
	}
	return h.fail(w, r, http.StatusInternalServerError, err.Error())
}

// invoke runs one call, turning a panic into an error so that a driver bug
// fails one Docker operation instead of killing the plugin.
func (h *handler) invoke(ctx context.Context, m method, body []byte) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			h.log.ErrorContext(ctx, "panic in plugin method", "method", m.name, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("internal error in %s: %v", m.name, p)
		}
	}()
	return m.call(ctx, body)
}

func allowed(m method) string {
	if m.allowGet {
		return "GET, POST"
	}
	return "POST"
}

// fail logs and sends an error reply; it returns status.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) int {
	h.log.WarnContext(r.Context(), "plugin request failed",
		"method", strings.TrimPrefix(r.URL.Path, "/"), "status", status, "error", msg)
	out, _ := json.Marshal(errorResponse{Err: msg}) // cannot fail for a string field
	return h.send(w, r, status, out)
}

// send writes a reply; it returns status.
func (h *handler) send(w http.ResponseWriter, r *http.Request, status int, body []byte) int {
	ctx := r.Context()
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.DebugContext(ctx, "plugin response",
			"method", strings.TrimPrefix(r.URL.Path, "/"), "status", status, "body", string(body))
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	// A write error means Docker hung up; there is nobody left to tell.
	_, _ = w.Write(body)
	return status
}
