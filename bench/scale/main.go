// Command scale measures what a large Calico cluster costs one host running calico-libnetwork, by
// simulation (issue 14). Every daemon watches the endpoints of all nodes, so a host pays for the whole
// cluster. For each phase, a small reference cluster and then the large one, it
//
//   - starts its own etcd and writes a simulated cluster in Calico's v3 layout through the project's own
//     datastore and api packages: Nodes, IPAM blocks, workload endpoints (half Docker containers as this
//     plugin's driver writes them, half Kubernetes pods as Calico's CNI writes them), profiles, policies
//     with a realistic spread of selectors, and a few containers on the host under test;
//   - starts the real daemon (bin/calico-libnetwork) as that host and times its initial sync to a
//     programmed kernel (/healthz), reading its memory and CPU from /proc;
//   - times label changes of a remote endpoint until the kernel's selector set gains or loses its address
//     (nft monitor), idle and then during a churn of endpoint changes across the cluster.
//
// Each phase runs in a throwaway network namespace of its own (ip netns exec): the daemon programs that
// namespace, never the host's. Needs root, etcd (Debian's etcd-server), nft and ip.
//
//	make build && go run ./bench/scale                        # full size: 1,000 nodes, 100,000 endpoints
//	go run ./bench/scale -nodes 50 -endpoints 2000 -policies 100 -churn-duration 10s   # quick
//
// With -profile DIR the daemon runs inside this process instead, and CPU and heap profiles land in DIR
// (memory and CPU figures then include the benchmark's own).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
)

func main() {
	log.SetFlags(log.Ltime)
	var o options
	var small sizes
	var child, out, jsonOut string
	flag.IntVar(&o.Nodes, "nodes", 1000, "Node resources of the large cluster, this host included")
	flag.IntVar(&o.Endpoints, "endpoints", 100000, "remote workload endpoints of the large cluster")
	flag.IntVar(&o.Policies, "policies", 2000, "policies of the large cluster")
	flag.IntVar(&o.Local, "local", 10, "containers on the host under test")
	flag.IntVar(&small.Nodes, "small-nodes", 10, "nodes of the small reference cluster")
	flag.IntVar(&small.Endpoints, "small-endpoints", 100, "endpoints of the small reference cluster (0: no small phase)")
	flag.IntVar(&small.Policies, "small-policies", 20, "policies of the small reference cluster")
	flag.IntVar(&o.probes, "probes", 10, "label probes each way (on, off) per phase before the churn")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "how long to watch the synced daemon idle (its CPU)")
	flag.Float64Var(&o.churnRate, "churn-rate", 100, "endpoint changes per second across the cluster")
	flag.DurationVar(&o.churnFor, "churn-duration", 60*time.Second, "how long the churn lasts (0: none)")
	flag.DurationVar(&o.probeEvery, "probe-every", 2*time.Second, "pause between label probes during the churn")
	flag.DurationVar(&o.syncTimeout, "sync-timeout", 10*time.Minute, "give up on the initial sync after this")
	flag.DurationVar(&o.probeTimeout, "probe-timeout", time.Minute, "give up on one label probe after this")
	flag.StringVar(&o.daemon, "daemon", "bin/calico-libnetwork", "the daemon binary (make build)")
	flag.StringVar(&o.etcd, "etcd", "/usr/bin/etcd", "the etcd binary")
	work := flag.String("workdir", "/dev/shm", "where each phase's etcd data and logs go (tmpfs is best)")
	keep := flag.Bool("keep", false, "keep each phase's folder (etcd data, daemon log)")
	flag.StringVar(&o.profileDir, "profile", "", "run the daemon in-process and write CPU and heap profiles here")
	flag.StringVar(&jsonOut, "json", "", "also write the results as JSON to this file")
	reportOf := flag.String("report", "", "print the report of results an earlier run wrote with -json, and exit")
	flag.StringVar(&child, "phase", "", "internal: run one phase here, in the current network namespace")
	flag.StringVar(&out, "out", "", "internal: where -phase writes its result")
	flag.Parse()

	if *reportOf != "" {
		if err := reprint(*reportOf); err != nil {
			log.Fatal(err)
		}
		return
	}
	if child != "" {
		o.dir = *work
		if err := runChild(child, out, o); err != nil {
			log.Fatalf("[%s] %v", child, err)
		}
		return
	}
	if err := preflight(o); err != nil {
		log.Fatal(err)
	}
	phases := []struct {
		name string
		s    sizes
	}{{"small", small}, {"large", o.sizes}}
	if small.Endpoints == 0 {
		phases = phases[1:]
	}
	var results []*phaseResult
	for _, ph := range phases {
		ph.s.Local = o.Local
		r, err := runIsolated(ph.name, ph.s, *work, *keep)
		if err != nil {
			log.Fatal(err)
		}
		results = append(results, r)
	}
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n# %s on %s: %s; load average at the end %s\n\n", time.Now().UTC().Format(time.RFC3339),
		host, machine(), strings.Join(strings.Fields(string(load))[:3], " "))
	report(os.Stdout, results)
	if jsonOut != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(jsonOut, data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func preflight(o options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: each phase makes a network namespace and the daemon programs it")
	}
	for _, tool := range []string{"ip", "nft", o.etcd} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s: %w", tool, err)
		}
	}
	if o.profileDir == "" {
		if _, err := os.Stat(o.daemon); err != nil {
			return fmt.Errorf("no daemon binary (make build): %w", err)
		}
	} else if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
		return err
	}
	return nil
}

// runIsolated runs one phase as a child of this program in a new network namespace, then removes the
// namespace with everything the daemon programmed in it.
func runIsolated(name string, s sizes, work string, keep bool) (*phaseResult, error) {
	dir, err := os.MkdirTemp(work, "calico-scale-"+name+"-")
	if err != nil {
		return nil, err
	}
	if !keep {
		defer os.RemoveAll(dir)
	} else {
		log.Printf("[%s] keeping %s", name, dir)
	}
	ns := fmt.Sprintf("calico-scale-%d-%s", os.Getpid(), name)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", ns, err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	result := filepath.Join(dir, "result.json")
	args := append([]string{"ip", "netns", "exec", ns, self}, os.Args[1:]...)
	// Later flags win: the phase's sizes, folder and result file.
	args = append(args, "-phase", name, "-out", result, "-workdir", dir,
		"-nodes", strconv.Itoa(s.Nodes), "-endpoints", strconv.Itoa(s.Endpoints), "-policies", strconv.Itoa(s.Policies))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := harness.StartTied(cmd); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("phase %s failed (%w); rerun with -keep to read its logs", name, err)
	}
	data, err := os.ReadFile(result)
	if err != nil {
		return nil, err
	}
	var r phaseResult
	return &r, json.Unmarshal(data, &r)
}

// runChild is one phase, inside its namespace.
func runChild(name, out string, o options) error {
	if o.daemon != "" && !filepath.IsAbs(o.daemon) {
		abs, err := filepath.Abs(o.daemon)
		if err != nil {
			return err
		}
		o.daemon = abs
	}
	r, err := runPhase(name, o)
	if err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(out, data, 0o644)
}

func reprint(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var results []*phaseResult
	if err := json.Unmarshal(data, &results); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(results) == 0 {
		return fmt.Errorf("%s holds no results", file)
	}
	report(os.Stdout, results)
	return nil
}

// machine describes what the numbers depend on.
func machine() string {
	kernel, _ := exec.Command("uname", "-r").Output()
	model, memory := "unknown CPU", ""
	info, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(info), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			model = strings.TrimSpace(v)
			break
		}
	}
	meminfo, _ := os.ReadFile("/proc/meminfo")
	if f := strings.Fields(string(meminfo)); len(f) > 1 && f[0] == "MemTotal:" {
		kb, _ := strconv.Atoi(f[1])
		memory = fmt.Sprintf(", %.0f GB RAM", float64(kb)*1024/1e9)
	}
	return fmt.Sprintf("%d CPUs (%s)%s, kernel %s", runtime.NumCPU(), model, memory, strings.TrimSpace(string(kernel)))
}
