package libnetwork

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestPluginHandlerServesBothSubsystems drives one handler the way Docker
// drives a managed plugin's socket: one handshake, then calls of both kinds.
func TestPluginHandlerServesBothSubsystems(t *testing.T) {
	netRec, ipamRec := &recorder{}, &recorder{}
	type observation struct{ subsystem, method string }
	var seen []observation
	observe := func(subsystem, method string, _ time.Duration, _ bool) {
		seen = append(seen, observation{subsystem, method})
	}
	h := NewPluginHandler(fakeNetwork{netRec}, fakeIpam{ipamRec}, nil, observe)

	for _, tc := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/Plugin.Activate", "", http.StatusOK, `{"Implements":["NetworkDriver","IpamDriver"]}`},
		{"/NetworkDriver.GetCapabilities", "", http.StatusOK, `{"Scope":"global","ConnectivityScope":"global"}`},
		{"/IpamDriver.GetCapabilities", "", http.StatusOK, `{"RequiresMACAddress":false,"RequiresRequestReplay":true}`},
		{"/IpamDriver.RequestAddress", `{"PoolID":"p"}`, http.StatusOK, `{"Address":"10.65.0.2/32","Data":null}`},
		{"/NetworkDriver.Leave", ids(`{"NetworkID":"<nid>","EndpointID":"<eid>"}`), http.StatusOK, `{}`},
		// A method of the other subsystem is not reachable under the wrong prefix.
		{"/IpamDriver.Leave", "{}", http.StatusNotFound, `{"Err":"unknown method /IpamDriver.Leave"}`},
		{"/NetworkDriver.RequestAddress", "{}", http.StatusNotFound, `{"Err":"unknown method /NetworkDriver.RequestAddress"}`},
		{"/Other.Thing", "{}", http.StatusNotFound, `{"Err":"unknown method /Other.Thing"}`},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body)))
		if body := strings.TrimSpace(w.Body.String()); w.Code != tc.status || body != tc.want {
			t.Errorf("POST %s = %d %s, want %d %s", tc.path, w.Code, body, tc.status, tc.want)
		}
	}
	if got := netRec.last().method; got != "Leave" {
		t.Errorf("network driver's last call = %q, want Leave", got)
	}
	if got := ipamRec.last().method; got != "RequestAddress" {
		t.Errorf("IPAM driver's last call = %q, want RequestAddress", got)
	}
	want := []observation{
		{"Plugin", "Activate"},
		{"NetworkDriver", "GetCapabilities"},
		{"IpamDriver", "GetCapabilities"},
		{"IpamDriver", "RequestAddress"},
		{"NetworkDriver", "Leave"},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("observed %+v, want %+v", seen, want)
	}
}
