// Package docker is the small part of the Docker Engine API the plugin needs: network names and container
// labels. It goes through Docker's own client, which speaks TLS and negotiates the API version with old and
// new engines alike; network replies are decoded here (see getJSON). Docker holds locks while it calls a
// network driver and serves no API while it starts, so nothing here may be called from inside a driver
// call without a deadline; callers run lookups in the background.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Config says how to reach the engine.
type Config struct {
	Host string // DOCKER_HOST: unix:///path or tcp://host:port
	// CertPath is DOCKER_CERT_PATH: TLS with the client certificate cert.pem and key.pem, the engine's
	// certificate verified against ca.pem. Empty: no TLS.
	CertPath string
}

// ErrNotFound is returned when Docker does not know the object.
var ErrNotFound = errors.New("docker: no such object")

// Client talks to one Docker engine and logs when it stops and starts answering: once per change,
// however often the background loops retry in between.
type Client struct {
	api *client.Client
	cfg Config
	log *slog.Logger

	// The network calls (see getJSON) go over api's connection to the engine but decode here.
	http       *http.Client
	basePath   string      // DOCKER_HOST's path, before the API version
	negotiated atomic.Bool // api has taken the engine's API version

	mu   sync.Mutex
	down error // why the last call found the engine unusable; nil while it answers
	seen bool  // a call has had an answer or a failure
}

// New returns a client; it does not connect (the engine may start after the plugin).
func New(cfg Config, log *slog.Logger) (*Client, error) {
	opts := []client.Opt{client.WithHost(cfg.Host)}
	if cfg.CertPath != "" {
		opts = append(opts, client.WithTLSClientConfig(filepath.Join(cfg.CertPath, "ca.pem"),
			filepath.Join(cfg.CertPath, "cert.pem"), filepath.Join(cfg.CertPath, "key.pem")))
	}
	api, err := client.New(opts...)
	if err != nil {
		if cfg.CertPath != "" {
			return nil, fmt.Errorf("the Docker API client (DOCKER_HOST=%s, DOCKER_CERT_PATH=%s): %w", cfg.Host, cfg.CertPath, err)
		}
		return nil, fmt.Errorf("the Docker API client (DOCKER_HOST=%s): %w", cfg.Host, err)
	}
	hostURL, err := client.ParseHostURL(cfg.Host) // client.New has accepted it
	if err != nil {
		return nil, err
	}
	dial := api.Dialer() // TLS included
	transport := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	return &Client{api: api, cfg: cfg, log: log, http: &http.Client{Transport: transport}, basePath: hostURL.Path}, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return c.api.Close()
}

// observe records the outcome of a call and returns the error to give its caller. Only a change is
// logged, with the reason in full; while the engine stays unusable callers get a short error that does
// not repeat it. Not found is an answer; a call cancelled or timed out by its caller tells nothing.
func (c *Client) observe(err error) error {
	switch {
	case err == nil || cerrdefs.IsNotFound(err):
		c.mu.Lock()
		if c.down != nil || !c.seen {
			c.log.Info("Docker API answers", "docker_host", c.cfg.Host, "api_version", c.api.ClientVersion())
		}
		c.down, c.seen = nil, true
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down == nil {
		c.log.Warn("Docker API unusable: network names and container labels are not learnt until it answers "+
			"(check DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)", "docker_host", c.cfg.Host, "error", err.Error())
		c.down = fmt.Errorf("the Docker API at %s is unusable (the reason was logged when it became so)", c.cfg.Host)
	}
	c.seen = true
	return c.down
}

// Network is the part of a network inspect we use, as the engine sends it ("Id" matches ID).
type Network struct {
	ID, Name, Driver string
	// Containers are the network's endpoints by container ID ("ep-<endpoint ID>" until attached).
	Containers map[string]NetworkEndpoint
}

// NetworkEndpoint is one container's endpoint on a network; an address not assigned ("") is the zero Prefix.
type NetworkEndpoint struct {
	EndpointID               string
	IPv4Address, IPv6Address netip.Prefix
}

// Network inspects one network by ID.
func (c *Client) Network(ctx context.Context, id string) (*Network, error) {
	var n Network
	if err := c.observe(c.getJSON(ctx, "/networks/"+url.PathEscape(id), &n)); err != nil {
		return nil, err
	}
	return &n, nil
}

// Networks lists all networks (without their endpoints).
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var list []Network
	if err := c.observe(c.getJSON(ctx, "/networks", &list)); err != nil {
		return nil, err
	}
	return list, nil
}

// getJSON GETs an API path and decodes only the fields out has. The network calls come here rather than
// to Docker's client, whose types decode every field: Docker before 28.0.1 (20.10 included) reports the
// IPv6 gateway of a network made without --subnet with its prefix length ("::/0", or whatever else an
// IPAM driver answers), which they refuse as an address, so that one such network would fail every list.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	if !c.negotiated.Load() {
		// As Docker's client does on its first call: the engine's API version, if older than ours.
		if _, err := c.api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			return err
		}
		c.negotiated.Store(true)
	}
	u := url.URL{Scheme: "http", Host: client.DummyHost, Path: c.basePath + "/v" + c.api.ClientVersion() + path}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var reply struct{ Message string }
		if json.Unmarshal(body, &reply) != nil || reply.Message == "" {
			reply.Message = strings.TrimSpace(string(body))
		}
		if resp.StatusCode == http.StatusNotFound {
			return cerrdefs.ErrNotFound.WithMessage(reply.Message)
		}
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, reply.Message)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// ContainerLabels returns a container's labels.
func (c *Client) ContainerLabels(ctx context.Context, id string) (map[string]string, error) {
	res, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err = c.observe(err); err != nil {
		return nil, err
	}
	if res.Container.Config == nil {
		return nil, nil
	}
	return res.Container.Config.Labels, nil
}

// NetworkEvent reports a network created or removed.
type NetworkEvent struct {
	Action, ID, Name, Driver string
}

// WatchNetworks streams network events until ctx ends or the stream breaks (then it returns the error;
// the caller reconnects).
func (c *Client) WatchNetworks(ctx context.Context, fn func(NetworkEvent)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the client's reader
	stream := c.api.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("type", "network")})
	for {
		select {
		case ev := <-stream.Messages:
			fn(NetworkEvent{Action: string(ev.Action), ID: ev.Actor.ID, Name: ev.Actor.Attributes["name"], Driver: ev.Actor.Attributes["type"]})
		case err := <-stream.Err:
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("docker events: %w", err) // the engine stopped; the next call tells whether it is back
			}
			return fmt.Errorf("docker events: %w", c.observe(err))
		}
	}
}
