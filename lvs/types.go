package lvs

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Protocols of a virtual service (a fwmark service has none).
const (
	TCP  = "TCP"
	UDP  = "UDP"
	SCTP = "SCTP"
)

// Forwarding methods (keepalived's lb_kind).
const (
	NAT = "NAT"
	DR  = "DR"
	TUN = "TUN"
	// Local is what the kernel reports for a destination that is an
	// address of this node ("Local" in ipvsadm -Ln), whatever method was
	// asked: the reconciler takes it as the method configured.
	Local = "Local"
)

// ServiceKey is what identifies a virtual service in IPVS: a protocol,
// address and port, or a firewall mark with an address family.
type ServiceKey struct {
	Protocol string     // TCP, UDP, SCTP; "" for a fwmark service
	Addr     netip.Addr // unset for a fwmark service
	Port     uint16
	FWMark   uint32
	IPv6     bool // the family of a fwmark service (an address service: Addr's)
}

// Is6 reports the service's address family.
func (k ServiceKey) Is6() bool {
	if k.FWMark != 0 {
		return k.IPv6
	}
	return k.Addr.Unmap().Is6()
}

// String is the key as ipvsadm writes it: "-t 10.0.0.1:80", "-f 5".
func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		s := "-f " + strconv.FormatUint(uint64(k.FWMark), 10)
		if k.IPv6 {
			s += " -6"
		}
		return s
	}
	flag := "-t"
	switch k.Protocol {
	case UDP:
		flag = "-u"
	case SCTP:
		flag = "--sctp-service"
	}
	return flag + " " + netip.AddrPortFrom(k.Addr.Unmap(), k.Port).String()
}

// Less orders keys: fwmark services after address services, then by
// protocol, address and port.
func (k ServiceKey) Less(o ServiceKey) bool {
	if (k.FWMark != 0) != (o.FWMark != 0) {
		return o.FWMark != 0
	}
	if k.FWMark != o.FWMark {
		return k.FWMark < o.FWMark
	}
	if k.IPv6 != o.IPv6 {
		return o.IPv6
	}
	if k.Protocol != o.Protocol {
		return k.Protocol < o.Protocol
	}
	if c := k.Addr.Compare(o.Addr); c != 0 {
		return c < 0
	}
	return k.Port < o.Port
}

// Service is one virtual service's settings (without its destinations).
type Service struct {
	Key       ServiceKey
	Scheduler string // rr, wrr, lc, ...
	// Timeout is the persistence timeout in seconds; 0: not persistent.
	Timeout uint32
	// Netmask is the persistence granularity as a prefix length; 0 means
	// the whole address (32 or 128).
	Netmask int
}

// Same reports whether two services have the same settings.
func (s Service) Same(o Service) bool {
	return s.Key == o.Key && s.Scheduler == o.Scheduler && s.Timeout == o.Timeout && s.netmask() == o.netmask()
}

func (s Service) netmask() int {
	if s.Netmask == 0 {
		if s.Key.Is6() {
			return 128
		}
		return 32
	}
	return s.Netmask
}

// Dest is one destination (real server) of a service.
type Dest struct {
	Addr    netip.Addr
	Port    uint16
	Weight  int
	Forward string // NAT, DR, TUN
}

// DestPort is the port of a real server in service k: its own, or for a
// real server without one the service's (ipvsadm -r IP takes the
// service's port; a fwmark service has none).
func DestPort(rsPort uint16, k ServiceKey) uint16 {
	if rsPort == 0 && k.FWMark == 0 {
		return k.Port
	}
	return rsPort
}

// DestKey identifies a destination within its service.
type DestKey struct {
	Addr netip.Addr
	Port uint16
}

// Key returns d's identity within its service.
func (d Dest) Key() DestKey { return DestKey{d.Addr.Unmap(), d.Port} }

// String is "10.0.0.2:80".
func (k DestKey) String() string { return netip.AddrPortFrom(k.Addr, k.Port).String() }

// Pool is a service with its destinations: the unit the reconciler plans.
type Pool struct {
	Service
	Dests []Dest
}

// ErrUnavailable is returned by a Backend on a kernel without IPVS.
var ErrUnavailable = errors.New("IPVS not available in this kernel")

// Backend is what lvs needs from IPVS: read the table, and add, update and
// delete services and destinations one at a time. Implementations: package
// lvs/ipvs (the kernel's, through moby/ipvs) and Memory.
type Backend interface {
	// Pools returns every service in IPVS with its destinations, vipd's
	// and others' alike.
	Pools() ([]Pool, error)
	AddService(Service) error
	UpdateService(Service) error
	DelService(ServiceKey) error
	AddDest(ServiceKey, Dest) error
	UpdateDest(ServiceKey, Dest) error
	DelDest(ServiceKey, DestKey) error
}

// OpKind is the kind of one reconciler operation.
type OpKind int

// Operation kinds, in the order the reconciler emits them for one service.
const (
	OpAddService OpKind = iota + 1
	OpUpdateService
	OpAddDest
	OpUpdateDest
	OpDelDest
	OpDelService
)

var opNames = [...]string{"", "add-service", "update-service", "add-dest", "update-dest", "del-dest", "del-service"}

func (k OpKind) String() string {
	if k > 0 && int(k) < len(opNames) {
		return opNames[k]
	}
	return "op(" + strconv.Itoa(int(k)) + ")"
}

// Op is one operation on IPVS.
type Op struct {
	Kind    OpKind
	Service Service // the service (its key for dest and delete operations)
	Dest    Dest    // for dest operations
}

// String is the operation in ipvsadm's words: "-A -t 10.0.0.1:80 -s rr".
func (o Op) String() string {
	k := o.Service.Key.String()
	switch o.Kind {
	case OpAddService, OpUpdateService:
		flag := "-A"
		if o.Kind == OpUpdateService {
			flag = "-E"
		}
		return flag + " " + k + o.Service.flags()
	case OpDelService:
		return "-D " + k
	case OpAddDest, OpUpdateDest:
		flag := "-a"
		if o.Kind == OpUpdateDest {
			flag = "-e"
		}
		return fmt.Sprintf("%s %s -r %s %s -w %d", flag, k, o.Dest.Key(), forwardFlag(o.Dest.Forward), o.Dest.Weight)
	case OpDelDest:
		return fmt.Sprintf("-d %s -r %s", k, o.Dest.Key())
	}
	return o.Kind.String()
}

// flags are the service's settings as ipvsadm -S writes them after the
// key: " -s rr -p 300 -M 255.255.255.0".
func (s Service) flags() string {
	out := " -s " + s.Scheduler
	if s.Timeout > 0 {
		out += " -p " + strconv.FormatUint(uint64(s.Timeout), 10)
		if n := s.netmask(); s.Key.Is6() && n != 128 {
			out += " -M " + strconv.Itoa(n)
		} else if !s.Key.Is6() && n != 32 {
			m := ^uint32(0) << (32 - n)
			out += " -M " + netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
		}
	}
	return out
}

// forwardFlag is ipvsadm's flag for a forwarding method.
func forwardFlag(f string) string {
	switch f {
	case DR:
		return "-g"
	case TUN:
		return "-i"
	}
	return "-m"
}
