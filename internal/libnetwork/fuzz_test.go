package libnetwork

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The fuzz targets pick a method by index so that the fuzzer spends its time
// on bodies rather than on path names. Keep the order stable: the seed
// corpus under testdata/fuzz refers to these indexes.
var (
	fuzzNetworkMethods = []string{
		"CreateNetwork", "DeleteNetwork", "CreateEndpoint", "DeleteEndpoint",
		"EndpointOperInfo", "Join", "Leave", "AllocateNetwork", "FreeNetwork",
		"GwAllocCheck", "DiscoverNew", "DiscoverDelete",
		"ProgramExternalConnectivity", "RevokeExternalConnectivity", "GetCapabilities",
	}
	fuzzIpamMethods = []string{
		"RequestPool", "ReleasePool", "RequestAddress", "ReleaseAddress",
		"GetCapabilities", "GetDefaultAddressSpaces",
	}
)

func FuzzDecodeNetworkDriver(f *testing.F) {
	h := NewNetworkHandler(fakeNetwork{&recorder{}}, nil, nil)
	f.Fuzz(func(t *testing.T, method uint8, body []byte) {
		checkFuzzReply(t, h, "/NetworkDriver."+fuzzNetworkMethods[int(method)%len(fuzzNetworkMethods)], body)
	})
}

func FuzzDecodeIpamDriver(f *testing.F) {
	h := NewIpamHandler(fakeIpam{&recorder{}}, nil, nil)
	f.Fuzz(func(t *testing.T, method uint8, body []byte) {
		checkFuzzReply(t, h, "/IpamDriver."+fuzzIpamMethods[int(method)%len(fuzzIpamMethods)], body)
	})
}

// checkFuzzReply requires a JSON object reply that is either a 200 result
// or a 400 with Err. The fake driver neither fails nor panics, so a 500 here
// means the server itself broke.
func checkFuzzReply(t *testing.T, h http.Handler, path string, body []byte) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", path, bytes.NewReader(body)))
	var reply map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil || reply == nil {
		t.Fatalf("%s: reply %q is not a JSON object: %v", path, w.Body.Bytes(), err)
	}
	errText, hasErr := reply["Err"].(string)
	switch w.Code {
	case http.StatusOK:
		if _, ok := reply["Err"]; ok {
			t.Fatalf("%s: 200 reply carries Err: %s", path, w.Body.Bytes())
		}
	case http.StatusBadRequest:
		if !hasErr || !strings.HasPrefix(errText, "malformed ") {
			t.Fatalf("%s: 400 reply without a malformed-request Err: %s", path, w.Body.Bytes())
		}
	default:
		t.Fatalf("%s: status %d for body %q: %s", path, w.Code, body, w.Body.Bytes())
	}
}
