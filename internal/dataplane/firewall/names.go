package firewall

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"regexp"
	"strings"

	"github.com/projectcalico/calico-libnetwork/internal/policy"
)

// Every name this package puts in an nft script is generated here from a hash and a sanitised readable
// part, or (interface names) checked against these patterns first, so no label, policy name or
// interface name can inject nft syntax.
var (
	validPrefix = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,12}$`)
	validIface  = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
	unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)
)

// maxSetName is the longest set name Felix uses (ipset's limit), kept for familiarity.
const maxSetName = 31

// hash is a short, name-safe digest.
func hash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:n]
}

// setName names the IP set of one family (4 or 6) of a policy set: "s4-" (a selector's addresses) or
// "n4-" (a named port's address, protocol and port members) followed by the set's ID without its
// "s:"/"n:" kind (a base64url hash, name-safe already but sanitised anyway).
func setName(id string, family int) string {
	kind, hashed, _ := strings.Cut(id, ":")
	name := fmt.Sprintf("%s%d-%s", kind, family, unsafeChars.ReplaceAllString(hashed, "_"))
	return name[:min(len(name), maxSetName)]
}

// ruleSetChain names the chain of a policy's or profile's rules for one direction, Felix-style:
// pi-/po- for policies (ingress/egress), pri-/pro- for profiles, then the name and a hash of the full
// identity (kind, namespace, name), which keeps it unique whatever the sanitising did.
func ruleSetChain(id policy.RuleSetID) string {
	prefix := "p"
	if id.Kind == policy.KindProfile {
		prefix = "pr"
	}
	if id.Dir == policy.Ingress {
		prefix += "i-"
	} else {
		prefix += "o-"
	}
	name := unsafeChars.ReplaceAllString(id.Name, "_")
	return prefix + name[:min(len(name), 40)] + "-" + hash(id.String(), 10)
}

// planChain names the chain shared by every local endpoint whose traffic in one direction the same
// plan decides: tw- (to workload, ingress) or fw- (from workload, egress) and the plan's hash.
func planChain(dir policy.Direction, plan policy.Plan) string {
	if dir == policy.Ingress {
		return "tw-" + hash(plan.Key(), 16)
	}
	return "fw-" + hash(plan.Key(), 16)
}
