// Package coord is vipd's etcd side: the key schema of DESIGN 3.3, watches
// that turn the store into model overlays, priority overrides and
// maintenance flags, status publishing under a lease, and split-brain
// arbitration. It drives the daemon only through the agent's door. It does
// not do VRRP timing.
package coord
