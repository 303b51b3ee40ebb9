// Package e2e holds the end-to-end test of vipd on a real IPVS that
// integration/ipvsvm runs inside its VM (build tag ipvsvm): vipd run with a
// virtual_server whose real servers are HTTP servers in network namespaces.
package e2e
