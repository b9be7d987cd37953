package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Rule actions.
const (
	ActionAllow = "Allow"
	ActionDeny  = "Deny"
	ActionLog   = "Log"
	ActionPass  = "Pass"
)

// Rule is one policy or profile rule, with Calico's field names.
type Rule struct {
	Action      string          `json:"action"`
	IPVersion   *int            `json:"ipVersion,omitempty"`
	Protocol    *Protocol       `json:"protocol,omitempty"`
	NotProtocol *Protocol       `json:"notProtocol,omitempty"`
	ICMP        *ICMPFields     `json:"icmp,omitempty"`
	NotICMP     *ICMPFields     `json:"notICMP,omitempty"`
	Source      EntityRule      `json:"source,omitzero"`
	Destination EntityRule      `json:"destination,omitzero"`
	HTTP        json.RawMessage `json:"http,omitempty"`
	Metadata    *RuleMetadata   `json:"metadata,omitempty"`
}

// ICMPFields matches an ICMP type and optionally code.
type ICMPFields struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

// RuleMetadata carries annotations on a rule.
type RuleMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// EntityRule matches the source or destination of a packet.
type EntityRule struct {
	Nets              []string             `json:"nets,omitempty"`
	NotNets           []string             `json:"notNets,omitempty"`
	Selector          string               `json:"selector,omitempty"`
	NotSelector       string               `json:"notSelector,omitempty"`
	NamespaceSelector string               `json:"namespaceSelector,omitempty"`
	Ports             []Port               `json:"ports,omitempty"`
	NotPorts          []Port               `json:"notPorts,omitempty"`
	ServiceAccounts   *ServiceAccountMatch `json:"serviceAccounts,omitempty"`
	Services          json.RawMessage      `json:"services,omitempty"`
}

// ServiceAccountMatch selects endpoints by their service account: one of Names (if any) and matching
// Selector (if any), which applies to the service account's labels.
type ServiceAccountMatch struct {
	Names    []string `json:"names,omitempty"`
	Selector string   `json:"selector,omitempty"`
}

// Protocol is a protocol name (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite) or number 1-255; it keeps the
// form it was written in.
type Protocol struct {
	Name   string
	Number uint8
}

var protocolNumbers = map[string]uint8{"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}

// ProtocolFromString parses a protocol name or number.
func ProtocolFromString(s string) (Protocol, error) {
	for name := range protocolNumbers {
		if strings.EqualFold(s, name) {
			return Protocol{Name: name}, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 255 {
		return Protocol{}, fmt.Errorf("invalid protocol %q: want TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255", s)
	}
	return Protocol{Number: uint8(n)}, nil
}

// NumberValue is the IP protocol number.
func (p Protocol) NumberValue() uint8 {
	if p.Name != "" {
		return protocolNumbers[p.Name]
	}
	return p.Number
}

// SupportsPorts reports whether port matches make sense for this protocol.
func (p Protocol) SupportsPorts() bool {
	n := p.NumberValue()
	return n == 6 || n == 17 || n == 132 || n == 136
}

func (p Protocol) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Number))
}

// MarshalJSON writes a name as a string and a number as a number, as Calico does.
func (p Protocol) MarshalJSON() ([]byte, error) {
	if p.Name != "" {
		return json.Marshal(p.Name)
	}
	return json.Marshal(p.Number)
}

// UnmarshalJSON accepts a string or a number.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := ProtocolFromString(s)
		*p = v
		return err
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("protocol must be a string or a number, got %s", b)
	}
	v, err := ProtocolFromString(strconv.Itoa(n))
	*p = v
	return err
}

// Port is a single port, a range "min:max", or a named port.
type Port struct {
	MinPort, MaxPort uint16
	Name             string
}

// PortFromString parses "80", "8000:8080" or a port name.
func PortFromString(s string) (Port, error) {
	if lo, hi, ok := strings.Cut(s, ":"); ok {
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || a > b {
			return Port{}, fmt.Errorf("invalid port range %q: want min:max with 0 <= min <= max <= 65535", s)
		}
		return Port{MinPort: uint16(a), MaxPort: uint16(b)}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return Port{MinPort: uint16(n), MaxPort: uint16(n)}, nil
	}
	// A name needs a letter: "70000" or "-1" is a bad number, not a port name.
	if s == "" || len(s) > 15 || strings.ContainsAny(s, " :\"'") || !strings.ContainsFunc(s, unicode.IsLetter) {
		return Port{}, fmt.Errorf("invalid port %q: want a number, a range min:max or a port name", s)
	}
	return Port{Name: s}, nil
}

func (p Port) String() string {
	switch {
	case p.Name != "":
		return p.Name
	case p.MinPort == p.MaxPort:
		return strconv.Itoa(int(p.MinPort))
	default:
		return fmt.Sprintf("%d:%d", p.MinPort, p.MaxPort)
	}
}

// MarshalJSON writes a single port as a number and anything else as a string, as Calico does.
func (p Port) MarshalJSON() ([]byte, error) {
	if p.Name == "" && p.MinPort == p.MaxPort {
		return json.Marshal(p.MinPort)
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON accepts a number or a string.
func (p *Port) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n uint16
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("port must be a number from 0 to 65535 or a string, got %s", b)
		}
		*p = Port{MinPort: n, MaxPort: n}
		return nil
	}
	v, err := PortFromString(s)
	*p = v
	return err
}
