package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/driver"
	"github.com/projectcalico/calico-libnetwork/internal/ipam"
)

// The simulated cluster: what every host's daemon would find in etcd. Everything is derived from the sizes
// and an endpoint's sequence number, so the loader and the churn produce the same shapes.

const (
	localNode = "scale-host" // the node the daemon under test runs as
	poolName  = "scale-pool"
	blockBits = 26 // the pool's blockSize: Calico's default, 64 addresses a block
	// probeNode hosts the remote probe endpoint; remote node 0 always exists.
	probeNode = 0
	// probeSeq identifies the probe endpoint, a Docker container: beyond any sequence number the load or
	// the churn gives.
	probeSeq = 1 << 40
)

var (
	pool     = netip.MustParsePrefix("10.0.0.0/8")
	hostNet  = netip.MustParsePrefix("172.16.0.0/16") // node addresses; this host is .0.1
	loadTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// Kubernetes-style workloads: the apps of every ordinary namespace and the tier of each.
	k8sApps = []struct{ name, tier string }{
		{"web", "frontend"}, {"gateway", "frontend"}, {"api", "backend"}, {"worker", "backend"},
		{"auth", "backend"}, {"search", "backend"}, {"report", "backend"}, {"queue", "backend"},
		{"cache", "data"}, {"db", "data"},
	}
	libRoles = []string{"frontend", "backend", "db"}
	envs     = []string{"prod", "staging", "dev"}
)

// sizes is what a run simulates.
type sizes struct {
	Nodes     int `json:"nodes"`     // Node resources, this host included
	Endpoints int `json:"endpoints"` // remote workload endpoints, half libnetwork and half Kubernetes-style
	Policies  int `json:"policies"`  // NetworkPolicies and GlobalNetworkPolicies, the probe's excluded
	Local     int `json:"local"`     // libnetwork endpoints on this host (with veths in the namespace)
}

// cluster derives every object of a simulated cluster from its sizes.
type cluster struct {
	sizes
	remote        int // nodes other than this host
	namespaces    int // Kubernetes namespaces: kube-system, monitoring, then ordinary ones
	networks      int // Docker networks (one profile each)
	libApps       int // distinct app labels of Docker containers
	blocksPerNode int // IPAM blocks of every remote node, with room for the churn's new endpoints
}

func newCluster(s sizes) (*cluster, error) {
	if s.Nodes < 2 || s.Endpoints < 2 || s.Policies < 1 || s.Local < 1 {
		return nil, fmt.Errorf("want at least 2 nodes, 2 endpoints, 1 policy and 1 local endpoint, got %+v", s)
	}
	c := &cluster{sizes: s, remote: s.Nodes - 1}
	c.namespaces = max(3, s.Endpoints/2/500) // about 500 pods a namespace
	c.networks = max(1, min(20, s.Endpoints/2/100))
	c.libApps = max(2, s.Endpoints/2/100) // about 100 containers an app
	perNode := (s.Endpoints + c.remote - 1) / c.remote
	// With room for the probe endpoint and the churn's new endpoints.
	c.blocksPerNode = perNode/64 + 1
	if c.blocksPerNode*(c.remote+1) > 1<<(blockBits-pool.Bits()) || c.Nodes > 60000 {
		return nil, fmt.Errorf("%d nodes with %d endpoints do not fit pool %s / host net %s", s.Nodes, s.Endpoints, pool, hostNet)
	}
	if s.Local > c.blocksPerNode*64 {
		return nil, fmt.Errorf("%d local endpoints do not fit this host's %d blocks", s.Local, c.blocksPerNode)
	}
	return c, nil
}

func (c *cluster) nodeName(n int) string {
	if n == c.remote {
		return localNode
	}
	return fmt.Sprintf("node-%04d", n)
}

// nodeAddr is node n's address; this host (n == remote) has the network's first.
func (c *cluster) nodeAddr(n int) netip.Prefix {
	i := n + 2
	if n == c.remote {
		i = 1
	}
	a := hostNet.Addr().As4()
	a[2], a[3] = byte(i>>8), byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(a), hostNet.Bits())
}

// block is the b-th IPAM block of node n.
func (c *cluster) block(n, b int) netip.Prefix {
	i := uint32(n*c.blocksPerNode + b)
	a := pool.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) + i<<(32-blockBits)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(a), blockBits)
}

// slot is an address of a node: the ord-th of its blocks' addresses.
type slot struct{ node, ord int }

func (c *cluster) blockOf(s slot) netip.Prefix { return c.block(s.node, s.ord/64) }

func (c *cluster) addr(s slot) netip.Addr {
	a := c.blockOf(s).Addr().As4()
	a[3] += byte(s.ord % 64)
	return netip.AddrFrom4(a)
}

// initialSlot places the j-th of the initial endpoints: round robin over the remote nodes.
func (c *cluster) initialSlot(j int) slot { return slot{node: j % c.remote, ord: j / c.remote} }

// endpoint is one simulated workload endpoint: seq gives its identity and labels, at its slot. Even
// sequence numbers are Docker containers as this plugin's driver writes them, odd ones pods as Calico's
// CNI writes them. canary flips the version label, the churn's label change.
type endpoint struct {
	seq    int
	at     slot
	canary bool
}

func (e endpoint) k8s() bool { return e.seq%2 == 1 }

// id is a stable pseudo-random hex string of n characters for seq and a purpose.
func id(purpose string, seq, n int) string {
	var out []byte
	for i := 0; len(out) < n; i++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", purpose, seq, i))
		out = hex.AppendEncode(out, sum[:])
	}
	return string(out[:n])
}

func mac(seq int) string {
	h := id("mac", seq, 10)
	return "ee:" + h[0:2] + ":" + h[2:4] + ":" + h[4:6] + ":" + h[6:8] + ":" + h[8:10]
}

func uid(seq int) string {
	h := id("uid", seq, 32)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func (c *cluster) namespace(i int) string {
	switch i {
	case 0:
		return "kube-system"
	case 1:
		return "monitoring"
	}
	return fmt.Sprintf("ns-%03d", i)
}

// k8sApp is the app of the pods with this seq in an ordinary namespace.
func (c *cluster) k8sApp(seq int) (ns int, app, tier string) {
	pod := seq / 2
	ns = pod % c.namespaces
	a := k8sApps[pod/c.namespaces%len(k8sApps)]
	switch ns {
	case 0:
		return ns, "kube-dns", "system"
	case 1:
		return ns, "prometheus", "system"
	}
	return ns, a.name, a.tier
}

func serviceAccount(app string) string { return app + "-sa" }

// wep is the WorkloadEndpoint of e as its writer would store it.
func (c *cluster) wep(e endpoint) (*api.WorkloadEndpoint, error) {
	node := c.nodeName(e.at.node)
	addr := c.addr(e.at)
	version := "v1"
	if e.canary {
		version = "canary"
	}
	if !e.k8s() {
		// As the driver's CreateEndpoint, with the container's org.projectcalico.label.* labels copied.
		w, err := api.LibnetworkEndpoint(node, id("endpoint", e.seq, 64))
		if err != nil {
			return nil, err
		}
		w.Spec.InterfaceName = api.LibnetworkInterface(w.Spec.Endpoint)
		w.Spec.MAC = mac(e.seq)
		w.Spec.IPNetworks = []string{netip.PrefixFrom(addr, 32).String()}
		w.Spec.Profiles = []string{c.network(e.seq / 2 % c.networks)}
		app := e.seq / 2 % c.libApps
		w.Labels = map[string]string{"app": fmt.Sprintf("svc-%03d", app), "role": libRoles[app%len(libRoles)],
			"env": envs[app%2], "version": version}
		w.UID, w.CreationTimestamp = uid(e.seq), &loadTime
		return w, nil
	}
	// As calico/node's CNI plugin: a pod of a Deployment, its service account, named ports.
	ns, app, tier := c.k8sApp(e.seq)
	namespace := c.namespace(ns)
	hash := id("replicaset/"+namespace+"/"+app, 0, 10)
	pod := fmt.Sprintf("%s-%s-%s", app, hash, id("pod", e.seq, 5))
	sa := serviceAccount(app)
	w := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Orchestrator: "k8s", Node: node, Pod: pod,
		Endpoint: "eth0", ContainerID: id("container", e.seq, 64), ServiceAccountName: sa,
		IPNetworks:    []string{netip.PrefixFrom(addr, 32).String()},
		Profiles:      []string{"kns." + namespace, "ksa." + namespace + "." + sa},
		InterfaceName: "cali" + id("iface/"+namespace+"."+pod, 0, 11), MAC: mac(e.seq),
		Ports: []api.EndpointPort{{Name: "http", Protocol: api.Protocol{Name: "TCP"}, Port: 8080},
			{Name: "metrics", Protocol: api.Protocol{Name: "TCP"}, Port: 9090}}}}
	name, err := api.WorkloadEndpointName(w.Spec)
	if err != nil {
		return nil, err
	}
	w.Name, w.Namespace = name, namespace
	w.Labels = map[string]string{"app": app, "k8s-app": app, "tier": tier, "version": version,
		"pod-template-hash": hash, api.LabelServiceAccount: sa}
	w.UID, w.CreationTimestamp = uid(e.seq), &loadTime
	return w, nil
}

// localWEP is the i-th container on this host; some of the GlobalNetworkPolicies and the probe policy
// select it.
func (c *cluster) localWEP(i int) (*api.WorkloadEndpoint, error) {
	w, err := api.LibnetworkEndpoint(localNode, id("local", i, 64))
	if err != nil {
		return nil, err
	}
	w.Spec.InterfaceName = api.LibnetworkInterface(w.Spec.Endpoint)
	w.Spec.MAC = mac(-1 - i)
	w.Spec.IPNetworks = []string{netip.PrefixFrom(c.addr(slot{node: c.remote, ord: i}), 32).String()}
	w.Spec.Profiles = []string{c.network(i % c.networks)}
	w.Labels = map[string]string{"app": fmt.Sprintf("svc-%03d", i%c.libApps), "role": libRoles[i%len(libRoles)],
		"env": "prod", "version": "v1", "scale-local": "true"}
	return w, nil
}

// probeWEP is the remote endpoint whose label the probes flip, at the last address of node probeNode.
func (c *cluster) probeWEP(on bool) (*api.WorkloadEndpoint, error) {
	w, err := c.wep(endpoint{seq: probeSeq, at: c.probeSlot()})
	if err != nil {
		return nil, err
	}
	w.Labels["scale-probe"] = map[bool]string{true: "on", false: "off"}[on]
	return w, nil
}

func (c *cluster) probeSlot() slot { return slot{node: probeNode, ord: c.blocksPerNode*64 - 1} }

func (c *cluster) network(i int) string { return fmt.Sprintf("net-%02d", i) }

// node is the Node resource calico/node (or this plugin) registers for node n.
func (c *cluster) node(n int) *api.Node {
	nd := &api.Node{Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: c.nodeAddr(n).String()},
		OrchRefs:  []api.OrchRef{{NodeName: c.nodeName(n), Orchestrator: "k8s"}},
		Addresses: []api.NodeAddress{{Address: c.nodeAddr(n).String(), Type: "CalicoNodeIP"}}}}
	nd.Name = c.nodeName(n)
	nd.Labels = map[string]string{"kubernetes.io/hostname": nd.Name, "kubernetes.io/os": "linux",
		"kubernetes.io/arch": "amd64"}
	nd.UID, nd.CreationTimestamp = uid(-1000000-n), &loadTime
	return nd
}

// profiles are the Docker networks' (as the driver writes them) and the Kubernetes namespaces' and
// service accounts' (as Calico's Kubernetes integration does: kns.* allow all and carry the namespace's
// labels, ksa.* carry the account's).
func (c *cluster) profiles() []api.Object {
	var out []api.Object
	for i := range c.networks {
		out = append(out, driver.NetworkProfile(c.network(i)))
	}
	for ns := range c.namespaces {
		name := c.namespace(ns)
		team := fmt.Sprintf("team-%d", ns%10)
		if ns < 2 {
			team = "platform"
		}
		kns := &api.Profile{Spec: api.ProfileSpec{Ingress: []api.Rule{{Action: api.ActionAllow}},
			Egress: []api.Rule{{Action: api.ActionAllow}},
			LabelsToApply: map[string]string{"pcns.projectcalico.org/name": name, "pcns.team": team,
				"pcns.env": envs[ns%len(envs)]}}}
		kns.Name = "kns." + name
		out = append(out, kns)
		apps := []string{"kube-dns"}
		if ns == 1 {
			apps = []string{"prometheus"}
		} else if ns > 1 {
			apps = apps[:0]
			for _, a := range k8sApps {
				apps = append(apps, a.name)
			}
		}
		for _, app := range apps {
			sa := serviceAccount(app)
			ksa := &api.Profile{Spec: api.ProfileSpec{LabelsToApply: map[string]string{"pcsa.projectcalico.org/name": sa}}}
			ksa.Name = "ksa." + name + "." + sa
			out = append(out, ksa)
		}
	}
	return out
}

// ipPool is the one pool every address comes from, routed without encapsulation (so the daemon routes
// every remote block directly, via its node).
func ipPool() *api.IPPool {
	p := &api.IPPool{Spec: api.IPPoolSpec{CIDR: pool.String(), BlockSize: blockBits, NATOutgoing: true}}
	p.Name = poolName
	return p
}

// blocks are node n's IPAM blocks with the given slots allocated, as IPAM leaves them.
func (c *cluster) blocks(n int, used map[int]int) []*ipam.Block {
	out := make([]*ipam.Block, c.blocksPerNode)
	for b := range out {
		out[b] = ipam.NewBlock(c.block(n, b), c.nodeName(n), loadTime)
	}
	for ord, seq := range used {
		c.allocate(out[ord/64], ord%64, seq, n)
	}
	return out
}

// allocate records endpoint seq's address at ord of block b as the writer's IPAM would.
func (c *cluster) allocate(b *ipam.Block, ord, seq, n int) {
	handle := "libnetwork." + id("handle", seq, 16)
	secondary := map[string]string{"node": c.nodeName(n), "timestamp": loadTime.Format(time.RFC3339)}
	if (endpoint{seq: seq}).k8s() {
		handle = "k8s-pod-network." + id("container", seq, 64)
		ns, app, _ := c.k8sApp(seq)
		secondary["namespace"], secondary["pod"] = c.namespace(ns), app
	}
	b.AssignAt(ord, ipam.Attribute{HandleID: &handle, Secondary: secondary})
}
