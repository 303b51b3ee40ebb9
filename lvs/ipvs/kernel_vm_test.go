//go:build ipvsvm

// These tests change the kernel's IPVS table. They run inside the VM of
// package integration/ipvsvm (TestIPVSInVM boots it), as root, on Debian's
// kernel with every ip_vs module loaded, with ipvsadm at hand.

package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/lvs"
)

// kernelBackend is a Backend on an empty IPVS table, emptied again after
// the test. It refuses to run outside the VM, where it would flush the
// host's table.
func kernelBackend(t *testing.T) *Backend {
	t.Helper()
	if os.Getenv("VIPD_IPVSVM") != "1" { // set by integration/ipvsvm's /init
		t.Fatal("this test flushes the kernel's IPVS table: it runs only inside the VM of integration/ipvsvm (make test-ipvs)")
	}
	ipvsadm(t, "-C")
	b, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		b.Close()
		if out, err := exec.Command("ipvsadm", "-C").CombinedOutput(); err != nil {
			t.Errorf("ipvsadm -C: %v %s", err, out)
		}
	})
	return b
}

func ipvsadm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ipvsadm", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkTable asserts that the kernel holds exactly want, read back twice:
// through the Backend (Pools) and through ipvsadm -Sn.
func checkTable(t *testing.T, b *Backend, want ...lvs.Pool) {
	t.Helper()
	want = slices.Clone(want)
	for i := range want {
		want[i].Dests = slices.Clone(want[i].Dests)
	}
	lvs.SortPools(want)
	got, err := b.Pools()
	if err != nil {
		t.Fatalf("Pools: %v", err)
	}
	if diff := poolsDiff(want, got); diff != "" {
		t.Fatalf("Pools (-want +got):\n%s", diff)
	}
	saved := ipvsadm(t, "-Sn")
	fromIpvsadm, err := parseIpvsadmSave(saved)
	if err != nil {
		t.Fatal(err)
	}
	if diff := poolsDiff(want, fromIpvsadm); diff != "" {
		t.Fatalf("ipvsadm -Sn (-want +got):\n%s\n%s", diff, saved)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var (
	ip = netip.MustParseAddr
	// One key of each kind: TCP, UDP and SCTP on IPv4 and IPv6, fwmark on
	// both families.
	allKeys = []lvs.ServiceKey{
		{Protocol: lvs.TCP, Addr: ip("192.0.2.10"), Port: 80},
		{Protocol: lvs.UDP, Addr: ip("192.0.2.10"), Port: 53},
		{Protocol: lvs.SCTP, Addr: ip("192.0.2.10"), Port: 3868},
		{Protocol: lvs.TCP, Addr: ip("2001:db8::10"), Port: 443},
		{Protocol: lvs.UDP, Addr: ip("2001:db8::10"), Port: 5060},
		{Protocol: lvs.SCTP, Addr: ip("2001:db8::10"), Port: 2905},
		{FWMark: 1},
		{FWMark: 0xfffffff0, IPv6: true},
	}
)

// Each kind of service is created, changed (scheduler, persistence and its
// netmask, persistence off again) and deleted, and reads back exactly.
func TestKernelServiceLifecycle(t *testing.T) {
	b := kernelBackend(t)
	for _, k := range allKeys {
		t.Run(k.String(), func(t *testing.T) {
			mask := 24
			if k.Is6() {
				mask = 64
			}
			steps := []lvs.Service{
				{Key: k, Scheduler: "rr"},
				{Key: k, Scheduler: "wlc", Timeout: 300, Netmask: mask},
				{Key: k, Scheduler: "wlc", Timeout: 7200, Netmask: 1},
				{Key: k, Scheduler: "sh", Timeout: 30},
				{Key: k, Scheduler: "lc"},
			}
			must(t, b.AddService(steps[0]))
			checkTable(t, b, lvs.Pool{Service: steps[0]})
			for _, s := range steps[1:] {
				must(t, b.UpdateService(s))
				checkTable(t, b, lvs.Pool{Service: s})
			}
			must(t, b.DelService(k))
			checkTable(t, b)
		})
	}
	t.Run("all at once", func(t *testing.T) {
		var want []lvs.Pool
		for i, k := range allKeys {
			s := lvs.Service{Key: k, Scheduler: "wrr", Timeout: uint32(10 * i)}
			must(t, b.AddService(s))
			want = append(want, lvs.Pool{Service: s})
		}
		checkTable(t, b, want...)
		for len(want) > 0 {
			must(t, b.DelService(want[0].Key))
			want = want[1:]
			checkTable(t, b, want...)
		}
	})
}

// Destinations with every forwarding method and weights 0, 1 and 65535 on
// each kind of service; changed in place; one deleted leaves the others;
// deleting the service takes them all.
func TestKernelDestinations(t *testing.T) {
	b := kernelBackend(t)
	for _, k := range allKeys {
		t.Run(k.String(), func(t *testing.T) {
			real1, real2, real3 := ip("198.51.100.1"), ip("198.51.100.2"), ip("198.51.100.3")
			if k.Is6() {
				real1, real2, real3 = ip("2001:db8:1::1"), ip("2001:db8:1::2"), ip("2001:db8:1::3")
			}
			port := k.Port // DR and TUN keep the service's port; a fwmark service's is 0
			svc := lvs.Service{Key: k, Scheduler: "wrr"}
			dests := []lvs.Dest{
				{Addr: real1, Port: 8080, Weight: 1, Forward: lvs.NAT},
				{Addr: real2, Port: port, Weight: 0, Forward: lvs.DR},
				{Addr: real3, Port: port, Weight: 65535, Forward: lvs.TUN},
			}
			must(t, b.AddService(svc))
			for _, d := range dests {
				must(t, b.AddDest(k, d))
			}
			checkTable(t, b, lvs.Pool{Service: svc, Dests: dests})

			changed := []lvs.Dest{
				{Addr: real1, Port: 8080, Weight: 0, Forward: lvs.NAT},
				{Addr: real2, Port: port, Weight: 7, Forward: lvs.TUN},
				{Addr: real3, Port: port, Weight: 2, Forward: lvs.DR},
			}
			for _, d := range changed {
				must(t, b.UpdateDest(k, d))
			}
			checkTable(t, b, lvs.Pool{Service: svc, Dests: changed})

			must(t, b.DelDest(k, changed[1].Key()))
			checkTable(t, b, lvs.Pool{Service: svc, Dests: []lvs.Dest{changed[0], changed[2]}})

			// A service change leaves the destinations alone.
			svc2 := lvs.Service{Key: k, Scheduler: "lblcr", Timeout: 60}
			must(t, b.UpdateService(svc2))
			checkTable(t, b, lvs.Pool{Service: svc2, Dests: []lvs.Dest{changed[0], changed[2]}})

			must(t, b.DelService(k))
			checkTable(t, b)
		})
	}
}

// requiredSchedulers are the IPVS schedulers every kernel since 5.x has
// (as modules in Debian's); knownSchedulers adds twos, which came in 6.5
// (not in Debian 12's 6.1; in its 6.12, which scripts/deps.sh installs and
// the VM boots, being the newest). twos is required on a kernel of 6.5 or
// later, so that every lb_algo keepalived names is proven there.
var (
	requiredSchedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}
	knownSchedulers    = append(slices.Clone(requiredSchedulers), "twos")
)

// kernelAtLeast reports whether the running kernel's release is major.minor
// or later.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	must(t, unix.Uname(&u))
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("kernel release %q: %v", unix.ByteSliceToString(u.Release[:]), err)
	}
	return ma > major || ma == major && mi >= minor
}

// kernelHas reports whether the scheduler's module is loaded (the VM's
// /init loads every ip_vs module there is) or built in.
func kernelHas(t *testing.T, sched string) bool {
	t.Helper()
	mods, err := os.ReadFile("/proc/modules")
	if err != nil {
		t.Fatal(err)
	}
	name := "ip_vs_" + sched
	for _, l := range strings.Split(string(mods), "\n") {
		if strings.HasPrefix(l, name+" ") {
			return true
		}
	}
	var u unix.Utsname
	must(t, unix.Uname(&u))
	builtin, _ := os.ReadFile("/lib/modules/" + unix.ByteSliceToString(u.Release[:]) + "/modules.builtin")
	return strings.Contains(string(builtin), "/"+name+".ko")
}

// Every scheduler the kernel has takes a service (IPv4 and IPv6) and can be
// switched to on a running service; one it does not have is refused with
// the kernel's reason and ipvsadm's words.
func TestKernelSchedulers(t *testing.T) {
	b := kernelBackend(t)
	var have, missing []string
	for _, s := range knownSchedulers {
		if kernelHas(t, s) {
			have = append(have, s)
		} else {
			missing = append(missing, s)
		}
	}
	required := requiredSchedulers
	if kernelAtLeast(t, 6, 5) {
		required = knownSchedulers
	}
	for _, s := range required {
		if !slices.Contains(have, s) {
			t.Fatalf("scheduler %s: no ip_vs_%s module loaded (have %v)", s, s, have)
		}
	}
	t.Logf("schedulers: %v; not in this kernel: %v", have, missing)

	var want []lvs.Pool
	for i, s := range have {
		for _, a := range []netip.Addr{ip("192.0.2.20"), ip("2001:db8::20")} {
			svc := lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: a, Port: uint16(1000 + i)}, Scheduler: s}
			real := ip("198.51.100.9")
			if a.Is6() {
				real = ip("2001:db8:1::9")
			}
			d := lvs.Dest{Addr: real, Port: 80, Weight: i, Forward: lvs.NAT}
			must(t, b.AddService(svc))
			must(t, b.AddDest(svc.Key, d))
			want = append(want, lvs.Pool{Service: svc, Dests: []lvs.Dest{d}})
		}
	}
	checkTable(t, b, want...)

	// One service through every scheduler, and back to the first.
	k := lvs.ServiceKey{FWMark: 77}
	must(t, b.AddService(lvs.Service{Key: k, Scheduler: have[0]}))
	for _, s := range append(have[1:], have[0]) {
		svc := lvs.Service{Key: k, Scheduler: s}
		must(t, b.UpdateService(svc))
		checkTable(t, b, append(slices.Clone(want), lvs.Pool{Service: svc})...)
	}
	must(t, b.DelService(k))

	// A scheduler no kernel has ("nosuch") is refused the same way, so the
	// refusal is proven also on a kernel that has all fourteen.
	for _, s := range append(missing, "nosuch") {
		svc := lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: ip("192.0.2.21"), Port: 80}, Scheduler: s}
		err := b.AddService(svc)
		wantMsg := fmt.Sprintf("ipvs: -A -t 192.0.2.21:80 -s %s: scheduler or persistence engine not found: no such file or directory", s)
		if err == nil || err.Error() != wantMsg || !errors.Is(err, unix.ENOENT) || errors.Is(err, lvs.ErrUnavailable) {
			t.Errorf("AddService with %s, which the kernel lacks: %v\nwant %s", s, err, wantMsg)
		}
	}
	checkTable(t, b, want...)
}

// Services and destinations made by someone else (ipvsadm here, keepalived
// or kube-proxy on a real host) read back exactly, and the Backend can
// change them like its own.
func TestKernelReadsServicesOfOthers(t *testing.T) {
	b := kernelBackend(t)
	for _, line := range strings.Split(strings.TrimSpace(savedByIpvsadm), "\n") {
		f := strings.Fields(line)
		if i := slices.Index(f, "--tun-type"); i >= 0 {
			f = slices.Delete(f, i, i+2)
		}
		if f[1] == "-f" && strings.HasPrefix(f[2], "-") { // printed with %d
			mark, _ := strconv.ParseInt(f[2], 10, 32)
			f[2] = strconv.FormatUint(uint64(uint32(mark)), 10)
		}
		ipvsadm(t, f...)
	}
	want := savedPools()
	checkTable(t, b, want...)

	k := lvs.ServiceKey{Protocol: lvs.TCP, Addr: ip("10.0.0.1"), Port: 80}
	must(t, b.DelDest(k, lvs.DestKey{Addr: ip("10.0.0.3"), Port: 80}))
	must(t, b.AddDest(k, lvs.Dest{Addr: ip("10.0.0.9"), Port: 80, Weight: 9, Forward: lvs.DR}))
	must(t, b.UpdateService(lvs.Service{Key: lvs.ServiceKey{FWMark: 6, IPv6: true}, Scheduler: "sed"}))
	want[1].Dests = []lvs.Dest{want[1].Dests[0], want[1].Dests[2], {Addr: ip("10.0.0.9"), Port: 80, Weight: 9, Forward: lvs.DR}}
	want[5].Service = lvs.Service{Key: lvs.ServiceKey{FWMark: 6, IPv6: true}, Scheduler: "sed"}
	checkTable(t, b, want...)
}

// The kernel's refusals come back with the command in ipvsadm's words,
// ipvsadm's reading of the errno, and the errno.
func TestKernelErrors(t *testing.T) {
	b := kernelBackend(t)
	k := lvs.ServiceKey{Protocol: lvs.TCP, Addr: ip("192.0.2.30"), Port: 80}
	svc := lvs.Service{Key: k, Scheduler: "rr"}
	d := lvs.Dest{Addr: ip("198.51.100.30"), Port: 80, Weight: 1, Forward: lvs.NAT}
	other := lvs.Dest{Addr: ip("198.51.100.31"), Port: 80, Weight: 1, Forward: lvs.NAT}
	tests := []struct {
		name  string
		call  func() error
		errno unix.Errno
		want  string
	}{
		{"destination on a missing service", func() error { return b.AddDest(k, d) }, unix.ESRCH,
			"ipvs: -a -t 192.0.2.30:80 -r 198.51.100.30:80 -m -w 1: service not defined: no such process"},
		{"update of a missing service", func() error { return b.UpdateService(svc) }, unix.ESRCH,
			"ipvs: -E -t 192.0.2.30:80 -s rr: no such service: no such process"},
		{"delete of a missing service", func() error { return b.DelService(k) }, unix.ESRCH,
			"ipvs: -D -t 192.0.2.30:80: no such service: no such process"},
		{"service added", func() error { return b.AddService(svc) }, 0, ""},
		{"service added twice", func() error { return b.AddService(svc) }, unix.EEXIST,
			"ipvs: -A -t 192.0.2.30:80 -s rr: service already exists: file exists"},
		{"destination added", func() error { return b.AddDest(k, d) }, 0, ""},
		{"destination added twice", func() error { return b.AddDest(k, d) }, unix.EEXIST,
			"ipvs: -a -t 192.0.2.30:80 -r 198.51.100.30:80 -m -w 1: destination already exists: file exists"},
		{"update of a missing destination", func() error { return b.UpdateDest(k, other) }, unix.ENOENT,
			"ipvs: -e -t 192.0.2.30:80 -r 198.51.100.31:80 -m -w 1: no such destination: no such file or directory"},
		{"delete of a missing destination", func() error { return b.DelDest(k, other.Key()) }, unix.ENOENT,
			"ipvs: -d -t 192.0.2.30:80 -r 198.51.100.31:80: no such destination: no such file or directory"},
	}
	for _, tt := range tests {
		err := tt.call()
		if tt.errno == 0 {
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.want || !errors.Is(err, tt.errno) || errors.Is(err, lvs.ErrUnavailable) {
			t.Errorf("%s: %v\nwant %s (errno %d)", tt.name, err, tt.want, tt.errno)
		}
	}
	checkTable(t, b, lvs.Pool{Service: svc, Dests: []lvs.Dest{d}})
}

// Calls from many goroutines share one netlink socket without mixing up
// their answers.
func TestKernelConcurrentCalls(t *testing.T) {
	b := kernelBackend(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := lvs.ServiceKey{Protocol: lvs.UDP, Addr: ip("192.0.2.40"), Port: uint16(2000 + g)}
			for i := range 20 {
				if err := b.AddService(lvs.Service{Key: k, Scheduler: "rr"}); err != nil {
					errs <- err
					return
				}
				if err := b.AddDest(k, lvs.Dest{Addr: ip("198.51.100.40"), Port: uint16(i), Weight: i, Forward: lvs.NAT}); err != nil {
					errs <- err
					return
				}
				pools, err := b.Pools()
				if err != nil {
					errs <- err
					return
				}
				found := false
				for _, p := range pools {
					if p.Key == k {
						found = len(p.Dests) == 1 && p.Dests[0].Weight == i
					}
				}
				if !found {
					errs <- fmt.Errorf("%s: own service not read back after add", k)
					return
				}
				if err := b.DelService(k); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkTable(t, b)
}
