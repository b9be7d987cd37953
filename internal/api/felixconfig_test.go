package api

import (
	"errors"
	"testing"
)

func TestValidateFelixConfiguration(t *testing.T) {
	yes := true
	good := func() *FelixConfiguration {
		f := &FelixConfiguration{Spec: FelixConfigurationSpec{LogSeverityScreen: "Info", InterfacePrefix: "cali,tap",
			DefaultEndpointToHostAction: "ACCEPT", VXLANEnabled: &yes, VXLANPort: intp(4789), VXLANVNI: intp(4096),
			VXLANMTU: intp(0), ReportingInterval: "0s", NATOutgoingAddress: "192.0.2.1"}}
		f.Name = "default"
		return f
	}
	if err := Validate(good()); err != nil {
		t.Fatalf("good configuration rejected: %v", err)
	}
	perNode := good()
	perNode.Name = "node.host-1"
	if err := Validate(perNode); err != nil {
		t.Errorf("per-node configuration rejected: %v", err)
	}
	tests := []struct {
		field string
		edit  func(*FelixConfigurationSpec)
	}{
		{"spec.logSeverityScreen", func(s *FelixConfigurationSpec) { s.LogSeverityScreen = "Loud" }},
		{"spec.defaultEndpointToHostAction", func(s *FelixConfigurationSpec) { s.DefaultEndpointToHostAction = "Reject" }},
		{"spec.interfacePrefix", func(s *FelixConfigurationSpec) { s.InterfacePrefix = "cali-" }},
		{"spec.vxlanPort", func(s *FelixConfigurationSpec) { s.VXLANPort = intp(70000) }},
		{"spec.vxlanVNI", func(s *FelixConfigurationSpec) { s.VXLANVNI = intp(0) }},
		{"spec.vxlanMTU", func(s *FelixConfigurationSpec) { s.VXLANMTU = intp(-1) }},
		{"spec.reportingInterval", func(s *FelixConfigurationSpec) { s.ReportingInterval = "often" }},
		{"spec.natOutgoingAddress", func(s *FelixConfigurationSpec) { s.NATOutgoingAddress = "2001:db8::1" }},
	}
	for _, tc := range tests {
		f := good()
		tc.edit(&f.Spec)
		var fe *FieldError
		if err := Validate(f); !errors.As(err, &fe) || fe.Field != tc.field || fe.Kind != KindFelixConfiguration {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	bad := good()
	bad.Namespace = "libnetwork"
	if err := Validate(bad); err == nil {
		t.Error("namespaced FelixConfiguration accepted")
	}
}
