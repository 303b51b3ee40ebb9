// Package config owns vipd's configuration model: plain structs for the
// global settings, vrrp_script, vrrp_instance, vrrp_sync_group and the LVS
// objects, the keepalived-compatible defaults, and validation that reports
// problems with the FILE:LINE they come from.
//
// It does no I/O beyond reading files. The keepalived.conf syntax lives in
// config/keepalived; the YAML syntax lives here (yaml.go). Both produce the same
// *Model, so everything downstream (agent, vrrp, lvs) sees one shape.
//
// Zero values mean "keepalived's default" wherever that is possible (NoPreempt
// rather than Preempt, for instance), so a model built by hand or decoded from
// YAML with fields left out behaves like a keepalived.conf that left them out.
// Normalize fills the remaining defaults (priority 100, advert_int 1s, ...).
package config

import (
	"net/netip"
	"time"
)

// Pos is where a value came from. Every object of the model keeps one so that
// validation and the runtime can point the operator at the line to fix.
type Pos struct {
	File string `yaml:"-" json:"-" mapstructure:"-"`
	Line int    `yaml:"-" json:"-" mapstructure:"-"`
}

// IsZero reports whether no position is known.
func (p Pos) IsZero() bool { return p.File == "" && p.Line == 0 }

// Model is one complete, validated configuration of a node.
type Model struct {
	Global              Global                `yaml:"global" mapstructure:"global"`
	Scripts             []*Script             `yaml:"scripts,omitempty" mapstructure:"scripts"`
	Instances           []*Instance           `yaml:"instances,omitempty" mapstructure:"instances"`
	SyncGroups          []*SyncGroup          `yaml:"sync_groups,omitempty" mapstructure:"sync_groups"`
	VirtualServerGroups []*VirtualServerGroup `yaml:"virtual_server_groups,omitempty" mapstructure:"virtual_server_groups"`
	VirtualServers      []*VirtualServer      `yaml:"virtual_servers,omitempty" mapstructure:"virtual_servers"`
	// TrackFiles are the track_file (vrrp_track_file) blocks that
	// Instance.TrackFiles / SyncGroup.TrackFiles name.
	TrackFiles []*TrackFile `yaml:"track_files,omitempty" mapstructure:"track_files"`
	// Keywords records where each keyword of an object was written, so
	// that a message about one value points at its line rather than at the
	// block's. The keepalived.conf parser fills it; it may stay empty.
	Keywords KeywordPositions `yaml:"-" mapstructure:"-"`
}

// KeywordPositions maps an object of the model (*Global, *Instance,
// *Script, *VirtualServer, *RealServer, *Checker) and one of its keywords
// to the position of the line that set it. It is bookkeeping for messages:
// two models never differ by it (Equal), and it is not part of the YAML.
type KeywordPositions struct {
	m map[any]map[string]Pos
}

// Set records that keyword kw of obj was written at pos.
func (k *KeywordPositions) Set(obj any, kw string, pos Pos) {
	if k.m == nil {
		k.m = map[any]map[string]Pos{}
	}
	o := k.m[obj]
	if o == nil {
		o = map[string]Pos{}
		k.m[obj] = o
	}
	o[kw] = pos
}

// At returns where the first of kws that obj has was written, else fallback.
func (k KeywordPositions) At(obj any, fallback Pos, kws ...string) Pos {
	o := k.m[obj]
	for _, kw := range kws {
		if p, ok := o[kw]; ok {
			return p
		}
	}
	return fallback
}

// Equal reports true: keyword positions never make two models differ.
func (KeywordPositions) Equal(KeywordPositions) bool { return true }

// Global holds global_defs.
type Global struct {
	Pos                   `yaml:"-" mapstructure:"-"`
	RouterID              string   `yaml:"router_id,omitempty" mapstructure:"router_id"`
	VRRPVersion           int      `yaml:"vrrp_version,omitempty" mapstructure:"vrrp_version"` // 2 (default) or 3
	ScriptUser            string   `yaml:"script_user,omitempty" mapstructure:"script_user"`
	ScriptGroup           string   `yaml:"script_group,omitempty" mapstructure:"script_group"`
	EnableScriptSecurity  bool     `yaml:"enable_script_security,omitempty" mapstructure:"enable_script_security"`
	NotificationEmail     []string `yaml:"notification_email,omitempty" mapstructure:"notification_email"`
	NotificationEmailFrom string   `yaml:"notification_email_from,omitempty" mapstructure:"notification_email_from"`
	SMTPServer            string   `yaml:"smtp_server,omitempty" mapstructure:"smtp_server"`
	SMTPConnectTimeout    Duration `yaml:"smtp_connect_timeout,omitempty" mapstructure:"smtp_connect_timeout"`
	// Garp holds the vrrp_garp_* / vrrp_gna_* defaults that instances inherit.
	Garp Garp `yaml:"garp,omitempty" mapstructure:"garp"`
	// Strict is vrrp_strict.
	Strict bool `yaml:"vrrp_strict,omitempty" mapstructure:"vrrp_strict"`
	// CheckUnicastSrc is vrrp_check_unicast_src: drop unicast adverts whose
	// source is not a configured unicast_peer.
	CheckUnicastSrc bool `yaml:"vrrp_check_unicast_src,omitempty" mapstructure:"vrrp_check_unicast_src"`
	// McastGroup4 / McastGroup6 are vrrp_mcast_group4 / vrrp_mcast_group6:
	// the multicast destination of instances without mcast_dst_ip (zero:
	// 224.0.0.18 / ff02::12). keepalived also puts McastGroup4 in the
	// pseudo-header of old_unicast_checksum adverts.
	McastGroup4 netip.Addr `yaml:"vrrp_mcast_group4,omitempty" mapstructure:"vrrp_mcast_group4"`
	McastGroup6 netip.Addr `yaml:"vrrp_mcast_group6,omitempty" mapstructure:"vrrp_mcast_group6"`
	// DownTimerAdverts is vrrp_down_timer_adverts, the default of the
	// instances' down_timer_adverts (0: 3).
	DownTimerAdverts int `yaml:"vrrp_down_timer_adverts,omitempty" mapstructure:"vrrp_down_timer_adverts"`
	// StartupDelay is vrrp_startup_delay: at (first) start, instances stay
	// in INIT, sending nothing, for this long (0: none; not on reload).
	StartupDelay Duration `yaml:"vrrp_startup_delay,omitempty" mapstructure:"vrrp_startup_delay"`
	// LowerPrioNoAdvert / HigherPrioSendAdvert are the global defaults
	// vrrp_lower_prio_no_advert / vrrp_higher_prio_send_advert.
	LowerPrioNoAdvert    bool `yaml:"vrrp_lower_prio_no_advert,omitempty" mapstructure:"vrrp_lower_prio_no_advert"`
	HigherPrioSendAdvert bool `yaml:"vrrp_higher_prio_send_advert,omitempty" mapstructure:"vrrp_higher_prio_send_advert"`
}

// Garp is the gratuitous ARP / unsolicited NA schedule of an instance
// (garp_master_* keywords) or the global defaults (vrrp_garp_*).
// Zero fields inherit: instance <- global <- keepalived default.
type Garp struct {
	MasterDelay         Duration `yaml:"master_delay,omitempty" mapstructure:"master_delay"`                   // default 5s
	MasterRepeat        int      `yaml:"master_repeat,omitempty" mapstructure:"master_repeat"`                 // default 5
	MasterRefresh       Duration `yaml:"master_refresh,omitempty" mapstructure:"master_refresh"`               // default 0 (off)
	MasterRefreshRepeat int      `yaml:"master_refresh_repeat,omitempty" mapstructure:"master_refresh_repeat"` // default 1
	LowerPrioDelay      Duration `yaml:"lower_prio_delay,omitempty" mapstructure:"lower_prio_delay"`           // default = MasterDelay
	LowerPrioRepeat     int      `yaml:"lower_prio_repeat,omitempty" mapstructure:"lower_prio_repeat"`         // default = MasterRepeat
	Interval            Duration `yaml:"interval,omitempty" mapstructure:"interval"`                           // vrrp_garp_interval, between GARPs
	GNAInterval         Duration `yaml:"gna_interval,omitempty" mapstructure:"gna_interval"`                   // vrrp_gna_interval, between NAs
}

// Script is a vrrp_script.
type Script struct {
	Pos      `yaml:"-" mapstructure:"-"`
	Name     string   `yaml:"name" mapstructure:"name"`
	Script   string   `yaml:"script" mapstructure:"script"`
	Interval Duration `yaml:"interval,omitempty" mapstructure:"interval"` // default 1s
	Timeout  Duration `yaml:"timeout,omitempty" mapstructure:"timeout"`   // default: Interval
	Weight   int      `yaml:"weight,omitempty" mapstructure:"weight"`     // -253..253; 0 means failure is FAULT
	// WeightReverse is keepalived's "weight N reverse".
	WeightReverse bool   `yaml:"weight_reverse,omitempty" mapstructure:"weight_reverse"`
	Rise          int    `yaml:"rise,omitempty" mapstructure:"rise"` // default 1
	Fall          int    `yaml:"fall,omitempty" mapstructure:"fall"` // default 1
	User          string `yaml:"user,omitempty" mapstructure:"user"`
	Group         string `yaml:"group,omitempty" mapstructure:"group"`
	InitFail      bool   `yaml:"init_fail,omitempty" mapstructure:"init_fail"`
}

// Auth is the VRRPv2 authentication block. Only PASS is implemented; AH is
// parsed and refused at validation.
type Auth struct {
	Type string `yaml:"type" mapstructure:"type"` // "PASS" or "AH"
	Pass string `yaml:"pass" mapstructure:"pass"` // up to 8 bytes on the wire
}

// VIP is one virtual_ipaddress entry:
// <ip>[/<len>] [brd <ip>] [dev <if>] [scope <scope>] [label <label>].
type VIP struct {
	Pos    `yaml:"-" mapstructure:"-"`
	Prefix netip.Prefix `yaml:"address" mapstructure:"address"`
	Brd    netip.Addr   `yaml:"brd,omitempty" mapstructure:"brd"`
	Dev    string       `yaml:"dev,omitempty" mapstructure:"dev"`
	Scope  string       `yaml:"scope,omitempty" mapstructure:"scope"` // global (default), site, link, host, nowhere
	Label  string       `yaml:"label,omitempty" mapstructure:"label"`
}

// Route is one virtual_routes entry.
type Route struct {
	Pos       `yaml:"-" mapstructure:"-"`
	Dst       netip.Prefix `yaml:"to" mapstructure:"to"`
	Via       netip.Addr   `yaml:"via,omitempty" mapstructure:"via"`
	Src       netip.Addr   `yaml:"src,omitempty" mapstructure:"src"`
	Dev       string       `yaml:"dev,omitempty" mapstructure:"dev"`
	Metric    int          `yaml:"metric,omitempty" mapstructure:"metric"`
	Table     int          `yaml:"table,omitempty" mapstructure:"table"`
	Scope     string       `yaml:"scope,omitempty" mapstructure:"scope"`
	Type      string       `yaml:"type,omitempty" mapstructure:"type"` // "" (unicast), blackhole, unreachable, prohibit
	Onlink    bool         `yaml:"onlink,omitempty" mapstructure:"onlink"`
	RawSource string       `yaml:"-" mapstructure:"-"` // the line as written, for warnings
}

// Track names a tracked item (script, interface or file) and an optional
// per-instance weight override. Weight nil means "use the object's weight"
// (for an interface: no weight, i.e. down means FAULT).
type Track struct {
	Pos     `yaml:"-" mapstructure:"-"`
	Name    string `yaml:"name" mapstructure:"name"`
	Weight  *int   `yaml:"weight,omitempty" mapstructure:"weight"`
	Reverse bool   `yaml:"reverse,omitempty" mapstructure:"reverse"`
}

// Notify holds notify_* scripts, each exactly as written (command and
// arguments in one string, keepalived quoting preserved by the parser).
type Notify struct {
	Master  string `yaml:"master,omitempty" mapstructure:"master"`
	Backup  string `yaml:"backup,omitempty" mapstructure:"backup"`
	Fault   string `yaml:"fault,omitempty" mapstructure:"fault"`
	Stop    string `yaml:"stop,omitempty" mapstructure:"stop"`
	Generic string `yaml:"generic,omitempty" mapstructure:"generic"` // "notify"
}

// Initial states of an instance (the "state" keyword).
const (
	StateBackup = "BACKUP"
	StateMaster = "MASTER"
)

// VRIDInvalid marks a virtual_router_id the parser already reported as
// wrong, so validation does not report the instance again for it.
const VRIDInvalid = -1

// Instance is one vrrp_instance.
type Instance struct {
	Pos       `yaml:"-" mapstructure:"-"`
	Name      string   `yaml:"name" mapstructure:"name"`
	State     string   `yaml:"state,omitempty" mapstructure:"state"` // StateBackup (default) or StateMaster
	Interface string   `yaml:"interface" mapstructure:"interface"`
	VRID      int      `yaml:"virtual_router_id" mapstructure:"virtual_router_id"`
	Priority  int      `yaml:"priority,omitempty" mapstructure:"priority"`     // 1..255, default 100
	AdvertInt Duration `yaml:"advert_int,omitempty" mapstructure:"advert_int"` // default 1s
	Version   int      `yaml:"version,omitempty" mapstructure:"version"`       // 0: global vrrp_version

	NoPreempt    bool     `yaml:"nopreempt,omitempty" mapstructure:"nopreempt"`
	PreemptDelay Duration `yaml:"preempt_delay,omitempty" mapstructure:"preempt_delay"`

	Auth *Auth `yaml:"authentication,omitempty" mapstructure:"authentication"`

	VIPs         []VIP   `yaml:"virtual_ipaddress,omitempty" mapstructure:"virtual_ipaddress"`
	ExcludedVIPs []VIP   `yaml:"virtual_ipaddress_excluded,omitempty" mapstructure:"virtual_ipaddress_excluded"`
	Routes       []Route `yaml:"virtual_routes,omitempty" mapstructure:"virtual_routes"`

	McastSrcIP   netip.Addr   `yaml:"mcast_src_ip,omitempty" mapstructure:"mcast_src_ip"`
	UnicastSrcIP netip.Addr   `yaml:"unicast_src_ip,omitempty" mapstructure:"unicast_src_ip"`
	UnicastPeers []netip.Addr `yaml:"unicast_peer,omitempty" mapstructure:"unicast_peer"`
	// CheckUnicastSrc is check_unicast_src (or the global default).
	CheckUnicastSrc bool `yaml:"check_unicast_src,omitempty" mapstructure:"check_unicast_src"`
	// OldUnicastChecksum is keepalived's old_unicast_checksum: compute the
	// VRRPv3 IPv4 checksum with the multicast group in the pseudo-header even
	// for unicast (keepalived <= 1.3.6 behaviour).
	OldUnicastChecksum bool `yaml:"old_unicast_checksum,omitempty" mapstructure:"old_unicast_checksum"`
	// McastGroup is where multicast adverts go: mcast_dst_ip, else the
	// global vrrp_mcast_group4/6 of the instance's family (Normalize fills
	// it in); zero means the standard 224.0.0.18 / ff02::12.
	McastGroup netip.Addr `yaml:"mcast_dst_ip,omitempty" mapstructure:"mcast_dst_ip"`
	// UnicastTTL is unicast_ttl: the IPv4 TTL of every advert (multicast
	// too), or the IPv6 hop limit of unicast adverts; 0 means keepalived's
	// default (255 for IPv4, the kernel's for IPv6 unicast).
	UnicastTTL int `yaml:"unicast_ttl,omitempty" mapstructure:"unicast_ttl"`
	// DownTimerAdverts is down_timer_adverts: the master down timer is
	// DownTimerAdverts * master advert interval + skew time (1..100;
	// Normalize fills the global vrrp_down_timer_adverts, else 3).
	DownTimerAdverts int `yaml:"down_timer_adverts,omitempty" mapstructure:"down_timer_adverts"`
	// LowerPrioNoAdvert is lower_prio_no_advert: a master that receives an
	// advert of lower priority does not answer with an advert of its own.
	LowerPrioNoAdvert bool `yaml:"lower_prio_no_advert,omitempty" mapstructure:"lower_prio_no_advert"`
	// HigherPrioSendAdvert is higher_prio_send_advert: a master that
	// receives an advert of higher priority sends one advert of its own
	// before becoming backup.
	HigherPrioSendAdvert bool `yaml:"higher_prio_send_advert,omitempty" mapstructure:"higher_prio_send_advert"`
	// NativeIPv6 is native_ipv6: the instance is IPv6 even without VIPs.
	NativeIPv6 bool `yaml:"native_ipv6,omitempty" mapstructure:"native_ipv6"`

	TrackScripts     []Track `yaml:"track_script,omitempty" mapstructure:"track_script"`
	TrackInterfaces  []Track `yaml:"track_interface,omitempty" mapstructure:"track_interface"`
	TrackFiles       []Track `yaml:"track_file,omitempty" mapstructure:"track_file"`
	DontTrackPrimary bool    `yaml:"dont_track_primary,omitempty" mapstructure:"dont_track_primary"`

	Notify Notify `yaml:"notify,omitempty" mapstructure:"notify"`

	Garp Garp `yaml:"garp,omitempty" mapstructure:"garp"`

	UseVMAC      bool   `yaml:"use_vmac,omitempty" mapstructure:"use_vmac"`
	VMACName     string `yaml:"vmac_name,omitempty" mapstructure:"vmac_name"` // default vrrp.<VRID>
	VMACXmitBase bool   `yaml:"vmac_xmit_base,omitempty" mapstructure:"vmac_xmit_base"`

	// NoAccept is no_accept (keepalived's default is accept unless vrrp_strict).
	NoAccept bool `yaml:"no_accept,omitempty" mapstructure:"no_accept"`
	// StrictMode is the instance's strict_mode (vrrp_strict for one instance).
	StrictMode bool `yaml:"strict_mode,omitempty" mapstructure:"strict_mode"`
}

// TrackFile is a track_file block: a file holding an integer that, times
// Weight, adjusts the priority of the instances that track it.
type TrackFile struct {
	Pos           `yaml:"-" mapstructure:"-"`
	Name          string `yaml:"name" mapstructure:"name"`
	File          string `yaml:"file" mapstructure:"file"`
	Weight        *int   `yaml:"weight,omitempty" mapstructure:"weight"` // nil: keepalived's default 1; 0: a non-zero value means FAULT
	WeightReverse bool   `yaml:"weight_reverse,omitempty" mapstructure:"weight_reverse"`
}

// SyncGroup is a vrrp_sync_group.
type SyncGroup struct {
	Pos             `yaml:"-" mapstructure:"-"`
	Name            string   `yaml:"name" mapstructure:"name"`
	Members         []string `yaml:"group" mapstructure:"group"`
	TrackScripts    []Track  `yaml:"track_script,omitempty" mapstructure:"track_script"`
	TrackInterfaces []Track  `yaml:"track_interface,omitempty" mapstructure:"track_interface"`
	TrackFiles      []Track  `yaml:"track_file,omitempty" mapstructure:"track_file"`
	Notify          Notify   `yaml:"notify,omitempty" mapstructure:"notify"`
	GlobalTracking  bool     `yaml:"global_tracking,omitempty" mapstructure:"global_tracking"`
	// TrackingWeight is sync_group_tracking_weight: tracked weights of members
	// apply instead of forcing the group to FAULT.
	TrackingWeight bool `yaml:"sync_group_tracking_weight,omitempty" mapstructure:"sync_group_tracking_weight"`
}

// VirtualServerGroup is a virtual_server_group.
type VirtualServerGroup struct {
	Pos     `yaml:"-" mapstructure:"-"`
	Name    string     `yaml:"name" mapstructure:"name"`
	Members []VSGEntry `yaml:"members" mapstructure:"members"`
}

// VSGEntry is one line of a virtual_server_group: an address (or range
// a.b.c.d-e) and port, or "fwmark N".
type VSGEntry struct {
	Pos     `yaml:"-" mapstructure:"-"`
	Address netip.Addr `yaml:"address,omitempty" mapstructure:"address"`
	RangeTo netip.Addr `yaml:"range_to,omitempty" mapstructure:"range_to"` // last address of a range
	Port    int        `yaml:"port,omitempty" mapstructure:"port"`
	FWMark  int        `yaml:"fwmark,omitempty" mapstructure:"fwmark"`
}

// VirtualServer is a virtual_server: "<ip> <port>", "fwmark <n>" or
// "group <name>".
type VirtualServer struct {
	Pos     `yaml:"-" mapstructure:"-"`
	Name    string     `yaml:"name" mapstructure:"name"` // as written after virtual_server, e.g. "10.0.0.1 80"
	Address netip.Addr `yaml:"address,omitempty" mapstructure:"address"`
	Port    int        `yaml:"port,omitempty" mapstructure:"port"`
	FWMark  int        `yaml:"fwmark,omitempty" mapstructure:"fwmark"`
	Group   string     `yaml:"group,omitempty" mapstructure:"group"`

	Protocol               string   `yaml:"protocol,omitempty" mapstructure:"protocol"`     // TCP (default), UDP, SCTP
	DelayLoop              Duration `yaml:"delay_loop,omitempty" mapstructure:"delay_loop"` // default 60s
	LBAlgo                 string   `yaml:"lb_algo,omitempty" mapstructure:"lb_algo"`       // rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, fo, ovf, mh
	LBKind                 string   `yaml:"lb_kind,omitempty" mapstructure:"lb_kind"`       // NAT (default), DR, TUN
	PersistenceTimeout     Duration `yaml:"persistence_timeout,omitempty" mapstructure:"persistence_timeout"`
	PersistenceGranularity string   `yaml:"persistence_granularity,omitempty" mapstructure:"persistence_granularity"`
	VirtualHost            string   `yaml:"virtualhost,omitempty" mapstructure:"virtualhost"`
	Quorum                 int      `yaml:"quorum,omitempty" mapstructure:"quorum"` // default 1
	Hysteresis             int      `yaml:"hysteresis,omitempty" mapstructure:"hysteresis"`
	QuorumUp               string   `yaml:"quorum_up,omitempty" mapstructure:"quorum_up"`
	QuorumDown             string   `yaml:"quorum_down,omitempty" mapstructure:"quorum_down"`
	Alpha                  bool     `yaml:"alpha,omitempty" mapstructure:"alpha"`
	Omega                  bool     `yaml:"omega,omitempty" mapstructure:"omega"`
	Inhibit                bool     `yaml:"inhibit_on_failure,omitempty" mapstructure:"inhibit_on_failure"`
	// HASuspend is ha_suspend: while the virtual server's address is not
	// on this node (a VRRP backup), its checkers are suspended; its service
	// stays in IPVS as the last results left it (check_api.c
	// update_checker_activity).
	HASuspend bool `yaml:"ha_suspend,omitempty" mapstructure:"ha_suspend"`

	SorryServer *RealServer   `yaml:"sorry_server,omitempty" mapstructure:"sorry_server"`
	RealServers []*RealServer `yaml:"real_servers,omitempty" mapstructure:"real_servers"`
}

// RealServer is a real_server (or sorry_server).
type RealServer struct {
	Pos     `yaml:"-" mapstructure:"-"`
	Address netip.Addr `yaml:"address" mapstructure:"address"`
	Port    int        `yaml:"port,omitempty" mapstructure:"port"`
	// Weight is the IPVS weight; nil is keepalived's default 1, and 0 is a
	// real value (the server is in the pool but gets no new connections).
	Weight     *int       `yaml:"weight,omitempty" mapstructure:"weight"`
	Inhibit    bool       `yaml:"inhibit_on_failure,omitempty" mapstructure:"inhibit_on_failure"`
	NotifyUp   string     `yaml:"notify_up,omitempty" mapstructure:"notify_up"`
	NotifyDown string     `yaml:"notify_down,omitempty" mapstructure:"notify_down"`
	LBKind     string     `yaml:"lb_kind,omitempty" mapstructure:"lb_kind"` // per-real-server forwarding override
	Checkers   []*Checker `yaml:"checkers,omitempty" mapstructure:"checkers"`
}

// Checker types.
const (
	CheckTCP  = "TCP_CHECK"
	CheckHTTP = "HTTP_GET"
	CheckSSL  = "SSL_GET"
	CheckMisc = "MISC_CHECK"
	CheckDNS  = "DNS_CHECK"
	CheckSMTP = "SMTP_CHECK"
)

// Checker is a health checker of a real server.
type Checker struct {
	Pos            `yaml:"-" mapstructure:"-"`
	Type           string     `yaml:"type" mapstructure:"type"` // CheckTCP, CheckHTTP, CheckSSL, CheckMisc, CheckDNS, CheckSMTP
	ConnectIP      netip.Addr `yaml:"connect_ip,omitempty" mapstructure:"connect_ip"`
	ConnectPort    int        `yaml:"connect_port,omitempty" mapstructure:"connect_port"`
	BindTo         netip.Addr `yaml:"bindto,omitempty" mapstructure:"bindto"`
	ConnectTimeout Duration   `yaml:"connect_timeout,omitempty" mapstructure:"connect_timeout"` // default 5s
	// Retry is retry / nb_get_retry: attempts after a failure before the
	// checker goes DOWN. nil is keepalived's default (defaults.go); 0 is
	// a real value: the first failure takes the checker DOWN.
	Retry            *int     `yaml:"retry,omitempty" mapstructure:"retry"`
	DelayBeforeRetry Duration `yaml:"delay_before_retry,omitempty" mapstructure:"delay_before_retry"`
	DelayLoop        Duration `yaml:"delay_loop,omitempty" mapstructure:"delay_loop"` // 0: the virtual server's
	Warmup           Duration `yaml:"warmup,omitempty" mapstructure:"warmup"`
	// HTTP_GET / SSL_GET
	URLs        []URL  `yaml:"urls,omitempty" mapstructure:"urls"`
	VirtualHost string `yaml:"virtualhost,omitempty" mapstructure:"virtualhost"`
	// MISC_CHECK
	MiscPath    string   `yaml:"misc_path,omitempty" mapstructure:"misc_path"`
	MiscTimeout Duration `yaml:"misc_timeout,omitempty" mapstructure:"misc_timeout"`
	MiscDynamic bool     `yaml:"misc_dynamic,omitempty" mapstructure:"misc_dynamic"`
	User        string   `yaml:"user,omitempty" mapstructure:"user"`
	// DNS_CHECK: the query's type (A, NS, CNAME, SOA, MX, TXT, AAAA;
	// default SOA) and name (default ".").
	DNSType string `yaml:"dns_type,omitempty" mapstructure:"dns_type"`
	DNSName string `yaml:"dns_name,omitempty" mapstructure:"dns_name"`
	// SMTP_CHECK: the name sent in HELO (default the node's host name).
	HeloName string `yaml:"helo_name,omitempty" mapstructure:"helo_name"`
}

// URL is one url block of HTTP_GET / SSL_GET.
type URL struct {
	Path       string `yaml:"path" mapstructure:"path"`
	Digest     string `yaml:"digest,omitempty" mapstructure:"digest"`
	StatusCode []int  `yaml:"status_code,omitempty" mapstructure:"status_code"` // empty: 200-299
}

// Duration is a time.Duration that reads and writes as "1s", "100ms" in
// YAML. keepalived's own number-of-seconds syntax is handled by its parser.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
