package ipvsvm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipd/vipd/integration/ipvsvm"
)

// TestIPVSInVM runs lvs/ipvs's tests, the kernel ones included
// (kernel_vm_test.go, build tag ipvsvm), on Debian's kernel with IPVS.
func TestIPVSInVM(t *testing.T) {
	rep := ipvsvm.Run(t, ipvsvm.Payload{Packages: []string{"./lvs/ipvs"}})
	res := rep.Result("github.com/vipd/vipd/lvs/ipvs")
	// The kernel tests, and the unit test that takes its other branch on a
	// kernel with IPVS.
	for _, name := range []string{
		"TestKernelServiceLifecycle",
		"TestKernelDestinations",
		"TestKernelSchedulers",
		"TestKernelReadsServicesOfOthers",
		"TestKernelErrors",
		"TestKernelConcurrentCalls",
		"TestNewOnThisKernel",
		"TestServiceMapsToIPVSAndBack",
	} {
		if got := res.Status(name); got != "PASS" {
			t.Errorf("%s in the VM: %q, want PASS", name, got)
		}
	}
	subtests := map[string]int{}
	for _, tr := range res.Tests {
		if tr.Status != "PASS" {
			t.Errorf("%s in the VM: %s", tr.Name, tr.Status)
		}
		if top, _, ok := strings.Cut(tr.Name, "/"); ok {
			subtests[top]++
		}
	}
	// 8 kinds of service, and all of them at once.
	if subtests["TestKernelServiceLifecycle"] != 9 || subtests["TestKernelDestinations"] != 8 {
		t.Errorf("subtests in the VM: %v, want 9 of TestKernelServiceLifecycle and 8 of TestKernelDestinations", subtests)
	}
	if !strings.Contains(res.Output, "kernel with IPVS") {
		t.Errorf("TestNewOnThisKernel did not find IPVS in the VM:\n%s", res.Output)
	}
	for _, line := range strings.Split(res.Output, "\n") {
		if strings.Contains(line, "schedulers:") {
			t.Logf("in the VM: %s", strings.TrimSpace(line))
		}
	}
	t.Logf("%d tests passed in the VM, %d modules loaded", len(res.Tests), len(rep.Modules))
}

// TestPayloadInVM checks what the harness gives a payload: environment,
// arguments, files and directories, a built binary, the package's
// testdata, root, IPVS and ipvsadm; with two packages in one VM.
func TestPayloadInVM(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "config.txt")
	if err := os.WriteFile(config, []byte("config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tree", "sub", "leaf.txt"), []byte("leaf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(dir, "hosts") // replaces the VM's own
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost vmcheck\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := ipvsvm.Run(t, ipvsvm.Payload{
		Packages: []string{"./integration/ipvsvm/testdata/vmcheck", "./integration/ipvsvm/testdata/vmcheck2"},
		Args:     []string{"-vmcheck.arg=two words"},
		Env:      map[string]string{"VMCHECK_QUOTED": `it's "quoted" $HOME`},
		Files:    map[string]string{"/etc/vmcheck/config.txt": config, "/srv/tree": filepath.Join(dir, "tree"), "/etc/hosts": hosts},
		Binaries: map[string]string{"/usr/local/bin/hello": "./integration/ipvsvm/testdata/hello"},
	})
	res := rep.Result("./integration/ipvsvm/testdata/vmcheck")
	for _, name := range []string{"TestRoot", "TestEnv", "TestArgs", "TestFiles", "TestBinary", "TestTestdata", "TestIPVS"} {
		if got := res.Status(name); got != "PASS" {
			t.Errorf("%s in the VM: %q, want PASS", name, got)
		}
	}
	if got := rep.Result("github.com/vipd/vipd/integration/ipvsvm/testdata/vmcheck2").Status("TestSecondBinary"); got != "PASS" {
		t.Errorf("TestSecondBinary in the VM: %q, want PASS", got)
	}
}

// TestVipdLVSInVM runs vipd itself on Debian's kernel with IPVS
// (integration/ipvsvm/e2e): HTTP real servers in network namespaces, a
// client through the virtual service, a real server stopped and
// restarted, a reload of one weight, inhibit_on_failure, a graceful stop;
// then, in the same VM, vipd following an etcd on the VM's loopback
// (etcdlite, embed in a static binary): a virtual server put, its weight
// changed and deleted in etcd, each checked on IPVS.
func TestVipdLVSInVM(t *testing.T) {
	rep := ipvsvm.Run(t, ipvsvm.Payload{
		Packages: []string{"./integration/ipvsvm/e2e"},
		Binaries: map[string]string{
			"/usr/local/bin/vipd":     "./cmd/vipd",
			"/usr/local/bin/etcdlite": "./integration/ipvsvm/etcdlite",
		},
		Env: map[string]string{"VIPD_BIN": "/usr/local/bin/vipd", "ETCD_BIN": "/usr/local/bin/etcdlite"},
	})
	res := rep.Result("github.com/vipd/vipd/integration/ipvsvm/e2e")
	for _, name := range []string{"TestVipdRunDrivesIPVS", "TestVipdFollowsEtcd"} {
		if got := res.Status(name); got != "PASS" {
			t.Errorf("%s in the VM: %q, want PASS", name, got)
		}
	}
	t.Logf("in the VM:\n%s", res.Output)
}
