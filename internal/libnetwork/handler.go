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

// handler serves one plugin subsystem; NetworkDriver and IpamDriver differ
// only in their routing tables.
type handler struct {
	methods map[string]method // keyed by URL path
	log     *slog.Logger
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
// implements NetworkAllocator or GatewayAllocChecker. A nil log discards.
func NewNetworkHandler(d NetworkDriver, log *slog.Logger) http.Handler {
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
	return newHandler("NetworkDriver", log, map[string]call{
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

// NewIpamHandler serves the IpamDriver protocol for d. A nil log discards.
func NewIpamHandler(d IpamDriver, log *slog.Logger) http.Handler {
	return newHandler("IpamDriver", log, map[string]call{
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
func newHandler(subsystem string, log *slog.Logger, calls map[string]call) *handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	activate := &activateResponse{Implements: []string{subsystem}}
	h := &handler{log: log, methods: map[string]method{
		"/Plugin.Activate": {name: "Activate", call: withoutRequest(func(context.Context) (*activateResponse, error) {
			return activate, nil
		})},
	}}
	for name, c := range calls {
		h.methods["/"+subsystem+"."+name] = method{name: name, call: c, allowGet: name == "GetCapabilities"}
	}
	return h
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
// driver, for optional calls the driver does not implement.
func constant[Req, Resp any](resp *Resp) call {
	return withRequest(func(context.Context, *Req) (*Resp, error) { return resp, nil })
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

// decode accepts an empty body as the zero request. Unknown fields are
// allowed so that newer Docker versions keep working.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return malformedError{err}
	}
	return nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	logName := strings.TrimPrefix(r.URL.Path, "/")
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.DebugContext(ctx, "plugin request", "method", logName, "http", r.Method, "body", string(body))
	}

	m, ok := h.methods[r.URL.Path]
	switch {
	case !ok:
		h.fail(w, r, http.StatusNotFound, "unknown method "+r.URL.Path)
		return
	case r.Method != http.MethodPost && (r.Method != http.MethodGet || !m.allowGet):
		w.Header().Set("Allow", allowed(m))
		h.fail(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s does not accept HTTP %s", m.name, r.Method))
		return
	case readErr != nil:
		if _, ok := errors.AsType[*http.MaxBytesError](readErr); ok {
			h.fail(w, r, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("%s request body exceeds %d bytes", m.name, maxRequestBytes))
		} else {
			h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("reading %s request: %v", m.name, readErr))
		}
		return
	}

	resp, err := h.invoke(ctx, m, body)
	if err == nil {
		var out []byte
		if out, err = json.Marshal(resp); err == nil {
			h.send(w, r, http.StatusOK, out)
			return
		}
		err = fmt.Errorf("encoding %s response: %w", m.name, err)
	}
	if bad, ok := errors.AsType[malformedError](err); ok {
		h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("malformed %s request: %v", m.name, bad.err))
		return
	}
	h.fail(w, r, http.StatusInternalServerError, err.Error())
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

// fail logs and sends an error reply.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.log.WarnContext(r.Context(), "plugin request failed",
		"method", strings.TrimPrefix(r.URL.Path, "/"), "status", status, "error", msg)
	out, _ := json.Marshal(errorResponse{Err: msg}) // cannot fail for a string field
	h.send(w, r, status, out)
}

func (h *handler) send(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	ctx := r.Context()
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.DebugContext(ctx, "plugin response",
			"method", strings.TrimPrefix(r.URL.Path, "/"), "status", status, "body", string(body))
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	// A write error means Docker hung up; there is nobody left to tell.
	_, _ = w.Write(body)
}
