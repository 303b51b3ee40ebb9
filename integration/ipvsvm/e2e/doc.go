// Package e2e holds the end-to-end tests of vipd on a real IPVS that
// integration/ipvsvm runs inside its VM (build tag ipvsvm): vipd run with a
// virtual_server whose real servers are HTTP servers in network namespaces;
// and vipd following an etcd on the VM's loopback (integration/ipvsvm/etcdlite)
// as a virtual server key is put, changed and deleted.
package e2e
