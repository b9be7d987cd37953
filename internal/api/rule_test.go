package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestProtocolJSON(t *testing.T) {
	tests := []struct {
		in      string
		out     string // re-encoded form
		number  uint8
		ports   bool
		wantErr bool
	}{
		{in: `"TCP"`, out: `"TCP"`, number: 6, ports: true},
		{in: `"tcp"`, out: `"TCP"`, number: 6, ports: true},
		{in: `"UDP"`, out: `"UDP"`, number: 17, ports: true},
		{in: `"ICMP"`, out: `"ICMP"`, number: 1},
		{in: `"ICMPv6"`, out: `"ICMPv6"`, number: 58},
		{in: `"icmpv6"`, out: `"ICMPv6"`, number: 58},
		{in: `"SCTP"`, out: `"SCTP"`, number: 132, ports: true},
		{in: `"UDPLite"`, out: `"UDPLite"`, number: 136, ports: true},
		{in: `6`, out: `6`, number: 6, ports: true},
		{in: `17`, out: `17`, number: 17, ports: true},
		{in: `1`, out: `1`, number: 1},
		{in: `255`, out: `255`, number: 255},
		{in: `"47"`, out: `47`, number: 47},
		{in: `0`, wantErr: true},
		{in: `256`, wantErr: true},
		{in: `-1`, wantErr: true},
		{in: `1.5`, wantErr: true},
		{in: `"0"`, wantErr: true},
		{in: `"GRE"`, wantErr: true},
		{in: `""`, wantErr: true},
		{in: `true`, wantErr: true},
		{in: `{}`, wantErr: true},
	}
	for _, tt := range tests {
		var p Protocol
		err := json.Unmarshal([]byte(tt.in), &p)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: accepted as %v", tt.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		out, err := json.Marshal(p)
		if err != nil || string(out) != tt.out {
			t.Errorf("%s: re-encoded as %s (%v), want %s", tt.in, out, err, tt.out)
		}
		if p.NumberValue() != tt.number || p.SupportsPorts() != tt.ports {
			t.Errorf("%s: number %d ports %v, want %d %v", tt.in, p.NumberValue(), p.SupportsPorts(), tt.number, tt.ports)
		}
	}
}

func TestProtocolErrorMessage(t *testing.T) {
	_, err := ProtocolFromString("GRE")
	if err == nil || !strings.Contains(err.Error(), `"GRE"`) || !strings.Contains(err.Error(), "1-255") {
		t.Errorf("error %v", err)
	}
	var p Protocol
	if err := json.Unmarshal([]byte(`[1]`), &p); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Errorf("error %v", err)
	}
}

func TestPortJSON(t *testing.T) {
	tests := []struct {
		in       string
		out      string
		min, max uint16
		name     string
		wantErr  bool
	}{
		{in: `80`, out: `80`, min: 80, max: 80},
		{in: `0`, out: `0`},
		{in: `65535`, out: `65535`, min: 65535, max: 65535},
		{in: `"80"`, out: `80`, min: 80, max: 80},
		{in: `"8000:8080"`, out: `"8000:8080"`, min: 8000, max: 8080},
		{in: `"0:65535"`, out: `"0:65535"`, min: 0, max: 65535},
		{in: `"443:443"`, out: `443`, min: 443, max: 443},
		{in: `"http"`, out: `"http"`, name: "http"},
		{in: `"my-port_1"`, out: `"my-port_1"`, name: "my-port_1"},
		{in: `"abcdefghijklmno"`, out: `"abcdefghijklmno"`, name: "abcdefghijklmno"},
		{in: `65536`, wantErr: true},
		{in: `70000`, wantErr: true},
		{in: `-1`, wantErr: true},
		{in: `1.5`, wantErr: true},
		{in: `1e3`, wantErr: true},
		{in: `"70000"`, wantErr: true},
		{in: `"-1"`, wantErr: true},
		{in: `"8080:80"`, wantErr: true},
		{in: `"1:70000"`, wantErr: true},
		{in: `"a:b"`, wantErr: true},
		{in: `":80"`, wantErr: true},
		{in: `"80:"`, wantErr: true},
		{in: `""`, wantErr: true},
		{in: `"has space"`, wantErr: true},
		{in: `"abcdefghijklmnop"`, wantErr: true}, // 16 characters
		{in: `true`, wantErr: true},
		{in: `{}`, wantErr: true},
		{in: `[80]`, wantErr: true},
	}
	for _, tt := range tests {
		var p Port
		err := json.Unmarshal([]byte(tt.in), &p)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: accepted as %+v", tt.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if p.MinPort != tt.min || p.MaxPort != tt.max || p.Name != tt.name {
			t.Errorf("%s: decoded %+v, want min %d max %d name %q", tt.in, p, tt.min, tt.max, tt.name)
		}
		out, err := json.Marshal(p)
		if err != nil || string(out) != tt.out {
			t.Errorf("%s: re-encoded as %s (%v), want %s", tt.in, out, err, tt.out)
		}
	}
}

func TestPortListInRule(t *testing.T) {
	in := `{"action":"Allow","protocol":"TCP","destination":{"ports":[22,"8000:8080","https"],"notPorts":["9000"]}}`
	var r Rule
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"action":"Allow","protocol":"TCP","destination":{"ports":[22,"8000:8080","https"],"notPorts":[9000]}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	var bad Rule
	if err := json.Unmarshal([]byte(`{"action":"Allow","protocol":"TCP","destination":{"ports":["8080:80"]}}`), &bad); err == nil ||
		!strings.Contains(err.Error(), "8080:80") {
		t.Errorf("bad range error %v", err)
	}
	var nullProto Rule
	if err := json.Unmarshal([]byte(`{"action":"Allow","protocol":null}`), &nullProto); err != nil || nullProto.Protocol != nil {
		t.Errorf("null protocol: %v %v", err, nullProto.Protocol)
	}
}

func TestPortString(t *testing.T) {
	for in, want := range map[string]string{"80": "80", "1:2": "1:2", "web": "web", "5:5": "5"} {
		p, err := PortFromString(in)
		if err != nil || p.String() != want {
			t.Errorf("%s: %v %v", in, p, err)
		}
	}
}
