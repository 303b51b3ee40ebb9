package ipvs

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/lvs"
)

var (
	vip4 = netip.MustParseAddr("192.0.2.10")
	vip6 = netip.MustParseAddr("2001:db8::10")
	rs4  = netip.MustParseAddr("198.51.100.2")
	rs6  = netip.MustParseAddr("2001:db8:1::2")
)

// mask4 is an IPv4 netmask as moby/ipvs carries it: the network-order
// bytes read in host order, so that they go on the wire unchanged.
func mask4(a, b, c, d byte) uint32 { return binary.NativeEndian.Uint32([]byte{a, b, c, d}) }

func TestServiceMapsToIPVSAndBack(t *testing.T) {
	tests := []struct {
		name string
		in   lvs.Service
		want ipvs.Service
	}{
		{
			name: "TCP IPv4 round robin",
			in:   lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, Scheduler: "rr"},
			want: ipvs.Service{Address: net.IP(vip4.AsSlice()), Protocol: unix.IPPROTO_TCP, Port: 80, AddressFamily: unix.AF_INET, SchedName: "rr", Netmask: mask4(255, 255, 255, 255)},
		},
		{
			name: "UDP IPv4 persistent for 300 s per /24",
			in:   lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.UDP, Addr: vip4, Port: 53}, Scheduler: "wlc", Timeout: 300, Netmask: 24},
			want: ipvs.Service{Address: net.IP(vip4.AsSlice()), Protocol: unix.IPPROTO_UDP, Port: 53, AddressFamily: unix.AF_INET, SchedName: "wlc", Flags: svcPersistent, Timeout: 300, Netmask: mask4(255, 255, 255, 0)},
		},
		{
			name: "SCTP IPv4 persistent per /1",
			in:   lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.SCTP, Addr: vip4, Port: 3868}, Scheduler: "sh", Timeout: 1, Netmask: 1},
			want: ipvs.Service{Address: net.IP(vip4.AsSlice()), Protocol: unix.IPPROTO_SCTP, Port: 3868, AddressFamily: unix.AF_INET, SchedName: "sh", Flags: svcPersistent, Timeout: 1, Netmask: mask4(128, 0, 0, 0)},
		},
		{
			name: "TCP IPv6",
			in:   lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip6, Port: 443}, Scheduler: "mh"},
			want: ipvs.Service{Address: net.IP(vip6.AsSlice()), Protocol: unix.IPPROTO_TCP, Port: 443, AddressFamily: unix.AF_INET6, SchedName: "mh", Netmask: 128},
		},
		{
			name: "UDP IPv6 persistent per /64",
			in:   lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.UDP, Addr: vip6, Port: 5060}, Scheduler: "lblcr", Timeout: 3600, Netmask: 64},
			want: ipvs.Service{Address: net.IP(vip6.AsSlice()), Protocol: unix.IPPROTO_UDP, Port: 5060, AddressFamily: unix.AF_INET6, SchedName: "lblcr", Flags: svcPersistent, Timeout: 3600, Netmask: 64},
		},
		{
			name: "fwmark IPv4",
			in:   lvs.Service{Key: lvs.ServiceKey{FWMark: 5}, Scheduler: "wrr"},
			want: ipvs.Service{FWMark: 5, AddressFamily: unix.AF_INET, SchedName: "wrr", Netmask: mask4(255, 255, 255, 255)},
		},
		{
			name: "fwmark IPv6 persistent",
			in:   lvs.Service{Key: lvs.ServiceKey{FWMark: 0xffffffff, IPv6: true}, Scheduler: "fo", Timeout: 60, Netmask: 48},
			want: ipvs.Service{FWMark: 0xffffffff, AddressFamily: unix.AF_INET6, SchedName: "fo", Flags: svcPersistent, Timeout: 60, Netmask: 48},
		},
		{
			name: "port 0 (persistent on every port)",
			in:   lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4}, Scheduler: "sed", Timeout: 900},
			want: ipvs.Service{Address: net.IP(vip4.AsSlice()), Protocol: unix.IPPROTO_TCP, AddressFamily: unix.AF_INET, SchedName: "sed", Flags: svcPersistent, Timeout: 900, Netmask: mask4(255, 255, 255, 255)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := toService(tt.in)
			if err != nil {
				t.Fatalf("toService: %v", err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Fatalf("toService (-want +got):\n%s", diff)
			}
			back, err := fromService(got)
			if err != nil {
				t.Fatalf("fromService: %v", err)
			}
			if diff := cmp.Diff(tt.in, back, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Fatalf("round trip (-in +back):\n%s", diff)
			}
		})
	}
}

// The explicit full netmask reads back as lvs's default, 0: the same
// service (Service.Same).
func TestFullNetmaskReadsBackAsDefault(t *testing.T) {
	for _, in := range []lvs.Service{
		{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, Scheduler: "rr", Timeout: 10, Netmask: 32},
		{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip6, Port: 80}, Scheduler: "rr", Timeout: 10, Netmask: 128},
	} {
		s, err := toService(in)
		if err != nil {
			t.Fatal(err)
		}
		back, err := fromService(s)
		if err != nil {
			t.Fatal(err)
		}
		if back.Netmask != 0 || !back.Same(in) {
			t.Errorf("%s /%d read back as %+v", in.Key, in.Netmask, back)
		}
	}
}

// The IPv4 netmask goes on the wire in network byte order whatever the
// host's: moby/ipvs writes the attribute in host order.
func TestIPv4NetmaskIsNetworkOrderOnTheWire(t *testing.T) {
	s, err := toService(lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, Scheduler: "rr", Timeout: 1, Netmask: 20})
	if err != nil {
		t.Fatal(err)
	}
	var wire [4]byte
	binary.NativeEndian.PutUint32(wire[:], s.Netmask)
	if want := [4]byte{255, 255, 240, 0}; wire != want {
		t.Fatalf("netmask attribute bytes %v, want %v", wire, want)
	}
}

// What the kernel hands back differs from what was sent: the hashed flag,
// TCP on fwmark services, 4-byte IPv4 addresses, a timeout kept on a
// service that is not persistent.
func TestServiceFromKernel(t *testing.T) {
	tests := []struct {
		name string
		in   ipvs.Service
		want lvs.Service
	}{
		{
			name: "hashed flag and persistence",
			in:   ipvs.Service{Address: net.IP{192, 0, 2, 10}, Protocol: unix.IPPROTO_TCP, Port: 80, AddressFamily: unix.AF_INET, SchedName: "wlc", Flags: svcPersistent | 0x0002, Timeout: 300, Netmask: mask4(255, 255, 0, 0)},
			want: lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, Scheduler: "wlc", Timeout: 300, Netmask: 16},
		},
		{
			name: "fwmark service with the kernel's TCP",
			in:   ipvs.Service{Address: net.IPv4zero.To4(), Protocol: unix.IPPROTO_TCP, FWMark: 7, AddressFamily: unix.AF_INET6, SchedName: "rr", Flags: 0x0002, Netmask: 128},
			want: lvs.Service{Key: lvs.ServiceKey{FWMark: 7, IPv6: true}, Scheduler: "rr"},
		},
		{
			name: "timeout without persistence",
			in:   ipvs.Service{Address: net.IP{192, 0, 2, 10}, Protocol: unix.IPPROTO_UDP, Port: 53, AddressFamily: unix.AF_INET, SchedName: "rr", Timeout: 300, Netmask: mask4(255, 255, 255, 255)},
			want: lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.UDP, Addr: vip4, Port: 53}, Scheduler: "rr"},
		},
		{
			name: "unset netmask on a service that is not persistent",
			in:   ipvs.Service{Address: net.IP{192, 0, 2, 10}, Protocol: unix.IPPROTO_TCP, Port: 80, AddressFamily: unix.AF_INET, SchedName: "rr"},
			want: lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, Scheduler: "rr"},
		},
		{
			name: "IPv4-mapped address in an IPv4 service",
			in:   ipvs.Service{Address: net.IPv4(192, 0, 2, 10), Protocol: unix.IPPROTO_TCP, Port: 80, AddressFamily: unix.AF_INET, SchedName: "rr", Netmask: mask4(255, 255, 255, 255)},
			want: lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, Scheduler: "rr"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fromService(&tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("fromService = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestServiceMappingErrors(t *testing.T) {
	to := []struct {
		in   lvs.Service
		want string
	}{
		{lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, FWMark: 5}, Scheduler: "rr"}, "a fwmark service has no protocol"},
		{lvs.Service{Key: lvs.ServiceKey{Protocol: "ICMP", Addr: vip4, Port: 80}, Scheduler: "rr"}, `protocol "ICMP": want TCP, UDP or SCTP`},
		{lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Port: 80}, Scheduler: "rr"}, "no address"},
		{lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}}, "no scheduler"},
		{lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, Scheduler: "rr", Netmask: 33}, "netmask /33: want 1..32 for IPv4"},
		{lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, Scheduler: "rr", Netmask: -1}, "netmask /-1"},
		{lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip6, Port: 80}, Scheduler: "rr", Netmask: 129}, "netmask /129: want 1..128 for IPv6"},
	}
	for _, tt := range to {
		if _, err := toService(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("toService(%+v) = %v, want an error with %q", tt.in, err, tt.want)
		}
	}
	from := []struct {
		in   ipvs.Service
		want string
	}{
		{ipvs.Service{Address: net.IP{192, 0, 2, 10}, Protocol: unix.IPPROTO_TCP, AddressFamily: 7}, "address family 7"},
		{ipvs.Service{Address: net.IP{192, 0, 2, 10}, Protocol: 50, AddressFamily: unix.AF_INET}, "IP protocol 50"},
		{ipvs.Service{Address: net.IP{192, 0, 2, 10}, Protocol: unix.IPPROTO_TCP, Port: 80, AddressFamily: unix.AF_INET, Flags: svcPersistent, Timeout: 1, Netmask: mask4(255, 0, 255, 0)}, "netmask 255.0.255.0 is not a prefix"},
		{ipvs.Service{Address: net.IP{192, 0, 2, 10}, Protocol: unix.IPPROTO_TCP, Port: 80, AddressFamily: unix.AF_INET, Flags: svcPersistent, Timeout: 1}, "netmask 0.0.0.0"},
		{ipvs.Service{Address: net.IP(vip6.AsSlice()), Protocol: unix.IPPROTO_TCP, Port: 80, AddressFamily: unix.AF_INET6, Netmask: 200}, "IPv6 netmask 200"},
		{ipvs.Service{Address: net.IP{1, 2}, Protocol: unix.IPPROTO_TCP, AddressFamily: unix.AF_INET}, "address"},
	}
	for _, tt := range from {
		if _, err := fromService(&tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fromService(%+v) = %v, want an error with %q", tt.in, err, tt.want)
		}
	}
}

func TestDestMapsToIPVSAndBack(t *testing.T) {
	k4 := lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}
	k6 := lvs.ServiceKey{Protocol: lvs.UDP, Addr: vip6, Port: 53}
	f6 := lvs.ServiceKey{FWMark: 9, IPv6: true}
	tests := []struct {
		name string
		key  lvs.ServiceKey
		in   lvs.Dest
		want ipvs.Destination
	}{
		{"NAT weight 1", k4, lvs.Dest{Addr: rs4, Port: 8080, Weight: 1, Forward: lvs.NAT},
			ipvs.Destination{Address: net.IP(rs4.AsSlice()), Port: 8080, Weight: 1, ConnectionFlags: ipvs.ConnectionFlagMasq, AddressFamily: unix.AF_INET}},
		{"DR weight 0 (drained)", k4, lvs.Dest{Addr: rs4, Port: 80, Weight: 0, Forward: lvs.DR},
			ipvs.Destination{Address: net.IP(rs4.AsSlice()), Port: 80, ConnectionFlags: ipvs.ConnectionFlagDirectRoute, AddressFamily: unix.AF_INET}},
		{"TUN weight 65535", k4, lvs.Dest{Addr: rs4, Port: 80, Weight: 65535, Forward: lvs.TUN},
			ipvs.Destination{Address: net.IP(rs4.AsSlice()), Port: 80, Weight: 65535, ConnectionFlags: ipvs.ConnectionFlagTunnel, AddressFamily: unix.AF_INET}},
		{"IPv6 NAT", k6, lvs.Dest{Addr: rs6, Port: 5353, Weight: 3, Forward: lvs.NAT},
			ipvs.Destination{Address: net.IP(rs6.AsSlice()), Port: 5353, Weight: 3, ConnectionFlags: ipvs.ConnectionFlagMasq, AddressFamily: unix.AF_INET6}},
		{"IPv6 fwmark DR, port 0", f6, lvs.Dest{Addr: rs6, Weight: 100, Forward: lvs.DR},
			ipvs.Destination{Address: net.IP(rs6.AsSlice()), Weight: 100, ConnectionFlags: ipvs.ConnectionFlagDirectRoute, AddressFamily: unix.AF_INET6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := toDest(tt.key, tt.in)
			if err != nil {
				t.Fatalf("toDest: %v", err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Fatalf("toDest (-want +got):\n%s", diff)
			}
			back, err := fromDest(got)
			if err != nil {
				t.Fatalf("fromDest: %v", err)
			}
			if back != tt.in {
				t.Fatalf("round trip: %+v, want %+v", back, tt.in)
			}
		})
	}
}

func TestDestFromKernel(t *testing.T) {
	// The kernel turns a destination on a local address into "local node"
	// forwarding, whatever was asked.
	d, err := fromDest(&ipvs.Destination{Address: net.IP{127, 0, 0, 1}, Port: 80, Weight: 1, ConnectionFlags: ipvs.ConnectionFlagLocalNode | 0x0100, AddressFamily: unix.AF_INET})
	if err != nil {
		t.Fatal(err)
	}
	if want := (lvs.Dest{Addr: netip.MustParseAddr("127.0.0.1"), Port: 80, Weight: 1, Forward: Local}); d != want {
		t.Fatalf("local destination read as %+v, want %+v", d, want)
	}
	if _, err := fromDest(&ipvs.Destination{Address: net.IP{10, 0, 0, 1}, ConnectionFlags: ipvs.ConnFwdBypass, AddressFamily: unix.AF_INET}); err == nil || !strings.Contains(err.Error(), "forwarding method 0x4") {
		t.Fatalf("bypass forwarding: %v, want an error naming it", err)
	}
	if _, err := fromDest(&ipvs.Destination{Address: net.IP{10, 0, 0, 1}, AddressFamily: 0}); err == nil {
		t.Fatal("address family 0: no error")
	}
}

func TestDestMappingErrors(t *testing.T) {
	k4 := lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}
	tests := []struct {
		key  lvs.ServiceKey
		in   lvs.Dest
		want string
	}{
		{k4, lvs.Dest{Addr: rs6, Port: 80, Weight: 1, Forward: lvs.NAT}, "not of the service's address family"},
		{lvs.ServiceKey{FWMark: 3, IPv6: true}, lvs.Dest{Addr: rs4, Weight: 1, Forward: lvs.DR}, "not of the service's address family"},
		{k4, lvs.Dest{Port: 80, Weight: 1, Forward: lvs.NAT}, "destination without address"},
		{k4, lvs.Dest{Addr: rs4, Port: 80, Weight: 1}, `forwarding method "": want NAT, DR or TUN`},
		{k4, lvs.Dest{Addr: rs4, Port: 80, Weight: -1, Forward: lvs.NAT}, "weight -1: want 0..65535"},
		{k4, lvs.Dest{Addr: rs4, Port: 80, Weight: 65536, Forward: lvs.NAT}, "weight 65536: want 0..65535"},
	}
	for _, tt := range tests {
		if _, err := toDest(tt.key, tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("toDest(%s, %+v) = %v, want an error with %q", tt.key, tt.in, err, tt.want)
		}
	}
}

// An IPv4-mapped IPv6 address is the IPv4 address, for services and
// destinations alike (lvs.DestKey unmaps too).
func TestMappedAddressesAreIPv4(t *testing.T) {
	mapped := netip.AddrFrom16(vip4.As16())
	s, err := toService(lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: mapped, Port: 80}, Scheduler: "rr"})
	if err != nil {
		t.Fatal(err)
	}
	if s.AddressFamily != unix.AF_INET || len(s.Address) != 4 {
		t.Fatalf("service on %s: family %d address %v", mapped, s.AddressFamily, []byte(s.Address))
	}
	d, err := toDest(lvs.ServiceKey{Protocol: lvs.TCP, Addr: vip4, Port: 80}, lvs.Dest{Addr: netip.AddrFrom16(rs4.As16()), Port: 80, Weight: 1, Forward: lvs.NAT})
	if err != nil {
		t.Fatal(err)
	}
	if d.AddressFamily != unix.AF_INET || len(d.Address) != 4 {
		t.Fatalf("destination family %d address %v", d.AddressFamily, []byte(d.Address))
	}
}
