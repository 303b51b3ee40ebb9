package ipvs

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/lvs"
)

// A generic netlink family the kernel does not have is lvs.ErrUnavailable
// with the kernel's answer as the cause, on every kernel and without
// privileges: the lookup New does first.
func TestMissingFamilyIsUnavailable(t *testing.T) {
	err := probe("vipd-no-such")
	if !errors.Is(err, lvs.ErrUnavailable) {
		t.Fatalf("probe: %v, want lvs.ErrUnavailable", err)
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("probe: %v, want the kernel's ENOENT as the cause", err)
	}
	if want := "IPVS not available in this kernel: generic netlink family vipd-no-such: no such file or directory"; err.Error() != want {
		t.Fatalf("probe: %q, want %q", err, want)
	}
}

// On this kernel: either IPVS is there (/proc/net/ip_vs, after New asked
// for the family, which loads ip_vs where it is a module) and New works, or
// it is not and New says lvs.ErrUnavailable with the cause. CI's host kernel
// has no IPVS (CONFIG_IP_VS off): the second case; the VM test
// (integration/ipvsvm) runs this test again on a kernel with IPVS: the first.
func TestNewOnThisKernel(t *testing.T) {
	b, err := New()
	_, statErr := os.Stat("/proc/net/ip_vs")
	have := statErr == nil
	switch {
	case errors.Is(err, lvs.ErrUnavailable):
		if have {
			t.Fatalf("New: %v, but /proc/net/ip_vs exists", err)
		}
		if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "generic netlink family IPVS") {
			t.Fatalf("New: %v, want the missing family as the cause", err)
		}
		t.Logf("kernel without IPVS: %v", err)
	case err != nil:
		t.Fatalf("New: %v, want success or lvs.ErrUnavailable", err)
	default:
		defer b.Close()
		if !have {
			t.Fatalf("New succeeded, but there is no /proc/net/ip_vs")
		}
		_, err := b.Pools()
		switch {
		case err == nil:
		case os.Geteuid() != 0 && errors.Is(err, unix.EPERM):
			t.Logf("kernel with IPVS, not root: %v", err)
		default:
			t.Fatalf("Pools: %v", err)
		}
		t.Logf("kernel with IPVS")
	}
}

// Errors say the command in ipvsadm's words and what it means, and keep
// the errno.
func TestErrorsNameTheCommand(t *testing.T) {
	k := lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}
	tests := []struct {
		op    lvs.Op
		errno unix.Errno
		want  string
	}{
		{lvs.Op{Kind: lvs.OpAddService, Service: lvs.Service{Key: k, Scheduler: "rr"}}, unix.EEXIST,
			"ipvs: -A -t 192.0.2.10:80 -s rr: service already exists: file exists"},
		{lvs.Op{Kind: lvs.OpAddService, Service: lvs.Service{Key: k, Scheduler: "twos"}}, unix.ENOENT,
			"ipvs: -A -t 192.0.2.10:80 -s twos: scheduler or persistence engine not found: no such file or directory"},
		{lvs.Op{Kind: lvs.OpDelService, Service: lvs.Service{Key: k}}, unix.ESRCH,
			"ipvs: -D -t 192.0.2.10:80: no such service: no such process"},
		{lvs.Op{Kind: lvs.OpAddDest, Service: lvs.Service{Key: k}, Dest: lvs.Dest{Addr: rs4, Port: 80, Weight: 2, Forward: lvs.DR}}, unix.ESRCH,
			"ipvs: -a -t 192.0.2.10:80 -r 198.51.100.2:80 -g -w 2: service not defined: no such process"},
		{lvs.Op{Kind: lvs.OpDelDest, Service: lvs.Service{Key: k}, Dest: lvs.Dest{Addr: rs4, Port: 80}}, unix.ENOENT,
			"ipvs: -d -t 192.0.2.10:80 -r 198.51.100.2:80: no such destination: no such file or directory"},
		{lvs.Op{Kind: lvs.OpUpdateDest, Service: lvs.Service{Key: k}, Dest: lvs.Dest{Addr: rs4, Port: 80, Weight: 1, Forward: lvs.TUN}}, unix.EINVAL,
			"ipvs: -e -t 192.0.2.10:80 -r 198.51.100.2:80 -i -w 1: invalid argument"},
	}
	for _, tt := range tests {
		err := opError(tt.op, explain(tt.op.Kind, tt.errno))
		if err.Error() != tt.want {
			t.Errorf("%v:\n got %q\nwant %q", tt.op, err, tt.want)
		}
		if !errors.Is(err, tt.errno) {
			t.Errorf("%q does not wrap %v", err, tt.errno)
		}
	}
}

// A request that cannot be mapped fails before it reaches the kernel, with
// the command in the error.
func TestInvalidRequestsNeverReachTheKernel(t *testing.T) {
	var b Backend // no netlink handle: a call that got through would say "backend closed"
	k := lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{b.AddService(lvs.Service{Key: k}), "ipvs: -A -t 192.0.2.10:80 -s : no scheduler"},
		{b.UpdateService(lvs.Service{Key: k, Scheduler: "rr", Netmask: 40}), "ipvs: -E -t 192.0.2.10:80 -s rr: netmask /40: want 1..32 for IPv4"},
		{b.DelService(lvs.ServiceKey{Protocol: "GRE", Addr: vip4}), `ipvs: -D -t 192.0.2.10:0: protocol "GRE": want TCP, UDP or SCTP`},
		{b.AddDest(k, lvs.Dest{Addr: rs6, Port: 80, Weight: 1, Forward: lvs.NAT}), "ipvs: -a -t 192.0.2.10:80 -r [2001:db8:1::2]:80 -m -w 1: destination [2001:db8:1::2]:80: not of the service's address family"},
		{b.UpdateDest(k, lvs.Dest{Addr: rs4, Port: 80, Weight: 70000, Forward: lvs.NAT}), "ipvs: -e -t 192.0.2.10:80 -r 198.51.100.2:80 -m -w 70000: destination 198.51.100.2:80: weight 70000: want 0..65535"},
		{b.DelDest(k, lvs.DestKey{Port: 80}), "ipvs: -d -t 192.0.2.10:80 -r invalid AddrPort: destination without address"},
		{b.AddService(lvs.Service{Key: k, Scheduler: "rr"}), "ipvs: -A -t 192.0.2.10:80 -s rr: ipvs: backend closed"},
	} {
		if tt.err == nil || tt.err.Error() != tt.want {
			t.Errorf("got %v\nwant %s", tt.err, tt.want)
		}
	}
	if _, err := b.Pools(); !errors.Is(err, errClosed) {
		t.Errorf("Pools on a closed backend: %v", err)
	}
}
