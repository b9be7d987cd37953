// Package docker is the small part of the Docker Engine API the plugin needs: network names and container
// labels. Docker holds locks while it calls a network driver and serves no API while it starts, so nothing
// here may be called from inside a driver call without a deadline; callers run lookups in the background.
package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one Docker daemon.
type Client struct {
	http *http.Client
	base string
}

// New returns a client for a DOCKER_HOST value (unix:///path or tcp://host:port).
func New(host string) (*Client, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("DOCKER_HOST=%q: %w", host, err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	switch u.Scheme {
	case "unix":
		path := u.Path
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		return &Client{http: &http.Client{Transport: transport}, base: "http://docker"}, nil
	case "tcp", "http":
		return &Client{http: &http.Client{Transport: transport}, base: "http://" + u.Host}, nil
	default:
		return nil, fmt.Errorf("DOCKER_HOST=%q: only unix:// and tcp:// are supported", host)
	}
}

// NotFoundError is returned when Docker does not know the object.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return "docker: no such " + e.What }

func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("docker API %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return &NotFoundError{What: path}
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("docker API %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Network is the part of a network inspect we use.
type Network struct {
	ID         string                     `json:"Id"`
	Name       string                     `json:"Name"`
	Driver     string                     `json:"Driver"`
	Containers map[string]NetworkEndpoint `json:"Containers"`
}

// NetworkEndpoint is one container's endpoint on a network.
type NetworkEndpoint struct {
	EndpointID  string `json:"EndpointID"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// Network inspects one network by ID.
func (c *Client) Network(ctx context.Context, id string) (*Network, error) {
	var n Network
	err := c.get(ctx, "/networks/"+url.PathEscape(id), &n)
	return &n, err
}

// Networks lists all networks.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var ns []Network
	err := c.get(ctx, "/networks", &ns)
	return ns, err
}

// ContainerLabels returns a container's labels.
func (c *Client) ContainerLabels(ctx context.Context, id string) (map[string]string, error) {
	var ctr struct {
		Config struct {
			Labels map[string]string `json:"Labels"`
		} `json:"Config"`
	}
	err := c.get(ctx, "/containers/"+url.PathEscape(id)+"/json", &ctr)
	return ctr.Config.Labels, err
}

// NetworkEvent reports a network created or removed.
type NetworkEvent struct {
	Action, ID, Name, Driver string
}

// WatchNetworks streams network events until ctx ends or the connection breaks (then it returns the error;
// the caller reconnects).
func (c *Client) WatchNetworks(ctx context.Context, fn func(NetworkEvent)) error {
	filters := url.QueryEscape(`{"type":["network"]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/events?filters="+filters, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("docker events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docker events: %s", resp.Status)
	}
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var ev struct {
			Action string `json:"Action"`
			Actor  struct {
				ID         string            `json:"ID"`
				Attributes map[string]string `json:"Attributes"`
			} `json:"Actor"`
		}
		if err := dec.Decode(&ev); err != nil {
			return fmt.Errorf("docker events: %w", err)
		}
		fn(NetworkEvent{Action: ev.Action, ID: ev.Actor.ID, Name: ev.Actor.Attributes["name"], Driver: ev.Actor.Attributes["type"]})
	}
}
