package multihost

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/syncbuf"
	"github.com/projectcalico/calico-libnetwork/test/e2e/harness"
	"github.com/projectcalico/calico-libnetwork/test/e2e/readme"
)

// stepTimeout bounds one step of a README example on one machine.
const stepTimeout = 3 * time.Minute

// TestREADMESeveralHosts runs the README's "Several hosts" example as written, in a lab of two hosts whose
// plugins it starts itself: its etcd machines are the lab's three members (started from the example's
// command, in the router's namespace, at the lab's addresses), and its hosts run their lines in a shell each
// (runExample). Then the route it shows is checked: host2 reaches the container through host1.
func TestREADMESeveralHosts(t *testing.T) {
	l := newBareLab(t, []hostSpec{{name: "host1", segment: 0, number: 21}, {name: "host2", segment: 0, number: 22}})
	host1, host2 := l.host("host1"), l.host("host2")
	block := readmeBlock(t, "Several hosts", "etcd --name")
	etcdMachines := []string{"etcd1", "etcd2", "etcd3"}
	addrs := strings.NewReplacer("10.0.0.10", etcdAddrs[0], "10.0.0.11", etcdAddrs[1], "10.0.0.12", etcdAddrs[2],
		"10.0.0.21", host1.addr4.Addr().String(), "10.0.0.22", host2.addr4.Addr().String())
	steps := exampleSteps(t, block, addrs, append(etcdMachines, "host1", "host2"))
	if !slices.Equal(steps[0].Machines, etcdMachines) {
		t.Fatalf("README.md line %d: the example's first step runs on %v, not on the etcd machines", block.Line, steps[0].Machines)
	}
	l.etcd = l.readmeEtcd(t, etcdMachines, steps[0].Text)
	said := l.runExample(t, block, steps[1:], map[string]*host{"host1": host1, "host2": host2})

	web := said["192.168.41.0"]
	out, err := host2.sh("ip route get " + web)
	if want := "via " + host1.addr4.Addr().String() + " dev eth0"; err != nil || !strings.Contains(out, want) {
		t.Errorf("host2 routes container web (%s) %q, want %s: %v", web, out, want, err)
	}
}

// exampleSteps splits a README example, its text put through replace (the example's addresses for the
// lab's), into the steps of its machines.
func exampleSteps(t *testing.T, block readme.Block, replace *strings.Replacer, machines []string) []readme.Step {
	t.Helper()
	steps, err := readme.Steps(replace.Replace(block.Text), machines)
	if err != nil {
		t.Fatalf("README.md line %d: %v", block.Line, err)
	}
	return steps
}

// runExample runs the steps of a README example, each on the lab hosts its machines stand for (hosts), in
// a shell per host, after tagging the test image as the busybox the examples name. The value a `# say`
// stands for is replaced in later steps by what its command printed; runExample returns those values.
func (l *lab) runExample(t *testing.T, block readme.Block, steps []readme.Step, hosts map[string]*host) map[string]string {
	t.Helper()
	shells := map[string]*shell{}
	for name, h := range hosts {
		h.mustDocker("tag", harness.TestImage, "busybox")
		shells[name] = h.shell(t)
	}
	said := map[string]string{}
	for _, s := range steps {
		text := s.Text
		for example, real := range said {
			text = strings.ReplaceAll(text, example, real)
		}
		for _, m := range s.Machines {
			if shells[m] == nil {
				t.Fatalf("README.md line %d: a step on %s, which is not one of the lab's hosts", block.Line, m)
			}
			out, err := shells[m].run(text)
			if err != nil {
				t.Fatalf("README.md line %d, on %s (%s):\n%s\n%v", block.Line, m, hosts[m].name, text, err)
			}
			if s.Says != "" {
				said[s.Says] = strings.TrimSpace(out)
			}
		}
	}
	t.Logf("README.md line %d ran in the lab: %d steps", block.Line, len(steps))
	return said
}

// readmeEtcd starts the lab's etcd members as an example's step on machines (one a member, in order) says,
// each with NAME and IP its own and its data folder under the lab's, in the router's namespace.
func (l *lab) readmeEtcd(t *testing.T, machines []string, text string) *etcdCluster {
	t.Helper()
	c := &etcdCluster{}
	for i, name := range machines {
		addr := etcdAddrs[i]
		own := regexp.MustCompile(`\bNAME\b`).ReplaceAllLiteralString(text, name)
		own = regexp.MustCompile(`\bIP\b`).ReplaceAllLiteralString(own, addr)
		own = strings.ReplaceAll(own, "/var/lib/etcd", filepath.Join(l.dir, "etcd", name))
		m := &etcdMember{clientURL: "http://" + addr + ":2379"}
		m.name = "etcd " + name
		m.args = []string{"nsenter", "--net=/var/run/netns/" + l.router, "bash", "-c", own}
		c.members = append(c.members, m)
	}
	c.run(t, l.router)
	return c
}

// shell is a bash on a lab host, as a user's terminal there: in the host's network and mount namespaces,
// with the host's name as its hostname (a UTS namespace of its own), the host's Docker as DOCKER_HOST
// and a CALICO_DATA_DIR of the host's own (the hosts share one filesystem), docker and calicoctl on its
// PATH, and bin/calico-libnetwork in its working folder, as in the repository. Exports and background
// jobs carry over from one step to the next; a failing command ends the shell (errexit), failing the
// step. At cleanup its jobs get SIGTERM, as a user stopping the daemon would send.
type shell struct {
	host  *host
	dir   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // the shell's own output: one line per finished step
	errs  syncbuf.Buffer
	steps int
}

func (h *host) shell(t *testing.T) *shell {
	t.Helper()
	s := &shell{host: h, dir: filepath.Join(h.dir, "shell"), lines: make(chan string)}
	path := filepath.Join(s.dir, "path")
	for _, d := range []string{path, filepath.Join(s.dir, "bin")} {
		must(t, os.MkdirAll(d, 0o755))
	}
	for link, target := range map[string]string{
		filepath.Join(s.dir, "bin", "calico-libnetwork"): bins.Plugin,
		filepath.Join(path, "calicoctl"):                 bins.Calicoctl,
		filepath.Join(path, "docker"):                    harness.DockerBin,
	} {
		must(t, os.Symlink(target, link))
	}
	s.cmd = exec.Command("nsenter", append(h.enter()[1:], "unshare", "--uts", "sh", "-c",
		`hostname "$1" && cd "$2" && exec bash -e -o pipefail -s`, "sh", h.name, s.dir)...) // nsenter -m moves to the anchor's folder
	s.cmd.Env = append(os.Environ(), "DOCKER_HOST="+h.socket(), "CALICO_DATA_DIR="+filepath.Join(h.dir, "calico-data"),
		"PATH="+path+":"+os.Getenv("PATH"))
	s.cmd.Stderr = &s.errs
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var err error
	s.stdin, err = s.cmd.StdinPipe()
	must(t, err)
	stdout, err := s.cmd.StdoutPipe()
	must(t, err)
	must(t, s.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(s.close)
	return s
}

// run runs one step and returns what it printed.
func (s *shell) run(text string) (string, error) {
	s.steps++
	out := filepath.Join(s.dir, fmt.Sprintf("step%d.out", s.steps))
	if _, err := fmt.Fprintf(s.stdin, "{\n%s\n} >%s 2>&1 </dev/null\necho done\n", text, out); err != nil {
		return "", fmt.Errorf("the shell on %s is gone: %w", s.host.name, err)
	}
	var finished bool
	select {
	case _, finished = <-s.lines:
	case <-time.After(stepTimeout):
	}
	printed, _ := os.ReadFile(out)
	if !finished {
		return string(printed), fmt.Errorf("the step failed or did not finish within %v; it printed:\n%s%s", stepTimeout, printed, s.errs.String())
	}
	return string(printed), nil
}

// close removes the host's containers (while a plugin the shell runs still answers), stops the shell's
// jobs with SIGTERM and waits for them, then ends the shell; whatever is left of its process group is
// killed.
func (s *shell) close() {
	s.host.removeContainers()
	_, _ = io.WriteString(s.stdin, "kill $(jobs -p) 2>/dev/null; wait || true\n")
	_ = s.stdin.Close()
	exited := make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
}
