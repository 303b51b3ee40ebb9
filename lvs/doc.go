// Package lvs keeps IPVS pools in step with health checks, as keepalived's
// checker process does: it turns the model's virtual_server blocks and the
// checkers' results into a desired IPVS table (Desired), plans the minimum
// operations between that and what the kernel holds (Plan), and executes
// them through a small Backend. The real Backend (package lvs/ipvs, moby/ipvs)
// and an in-memory one with an operation transcript (Memory) implement it.
//
// lvs owns virtual and real servers, the desired pool and the reconciler. It
// does not run checkers (lvs/check does), nor decide anything about VRRP.
// It never touches an IPVS service that is not in its configuration and
// that it did not create.
package lvs
