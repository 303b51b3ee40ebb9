package api

// The fleet view (vipd status --fleet, GET /v1/fleet): every node of the
// gossip cluster with its instances, the classic VRRP peers heard on the
// segments, and what looks wrong. The JSON shape is a contract (DESIGN
// 3.4).

// Fleet is the whole fleet as one node sees it.
type Fleet struct {
	Nodes    []FleetNode `json:"nodes"`
	Peers    []Peer      `json:"peers"`
	Warnings []Warning   `json:"warnings"`
}

// FleetNode is one node of the gossip cluster.
type FleetNode struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"` // gossip address HOST:PORT
	Alive bool   `json:"alive"`
	// State is memberlist's view: alive, suspect, dead, left.
	State string `json:"state"`
	// Maintenance is the node's maintenance reason ("" when none; a node
	// in maintenance without a reason says "maintenance").
	Maintenance string `json:"maintenance"`
	// Instances are the objects of vipd status, plus where each runs.
	Instances []FleetInstance `json:"instances"`
	// Version is the node's vipd version.
	Version string `json:"version,omitempty"`
}

// FleetInstance is an instance of vipd status with what the fleet needs
// to compare nodes: interface names are local, so the segment (the
// subnet of the interface's primary address) says where it runs.
type FleetInstance struct {
	InstanceStatus
	Family    string `json:"family"`  // ipv4 or ipv6
	Segment   string `json:"segment"` // e.g. 10.0.0.0/24
	Source    string `json:"source"`  // the address it advertises from
	AdvertInt string `json:"advert_int"`
	// AuthHash identifies the authentication settings without revealing
	// them ("" when none): nodes of one VRID must agree.
	AuthHash string `json:"auth_hash,omitempty"`
}

// Peer is a VRRP router heard on a segment that is not in gossip (a
// classic keepalived, a router): what its adverts say.
type Peer struct {
	Addr     string `json:"addr"`
	VRID     int    `json:"vrid"`
	Priority int    `json:"priority"`
	State    string `json:"state"` // MASTER: it advertises
	Segment  string `json:"segment"`
	// HeardBy names the nodes that hear it.
	HeardBy []string `json:"heard_by,omitempty"`
}

// Warning is something wrong in the fleet.
type Warning struct {
	// Kind: split_brain, config_mismatch, maintenance.
	Kind     string   `json:"kind"`
	Instance string   `json:"instance"` // "" when the warning is about a node
	VRID     int      `json:"vrid"`     // 0 when the warning is about a node
	Nodes    []string `json:"nodes"`
	Detail   string   `json:"detail"`
}

// Warning kinds.
const (
	WarnSplitBrain     = "split_brain"
	WarnConfigMismatch = "config_mismatch"
	WarnMaintenance    = "maintenance"
)
