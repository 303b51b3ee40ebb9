// Package integration holds vipd's end-to-end tests: labs of network
// namespaces (package integration/lab) in which real vipd processes run next
// to real keepalived, with captures on the wire, links cut and VRRP filtered.
// It owns no production code; the tests need root and skip themselves, with
// the reason, without it. The lab benchmarks (TestFailoverBench,
// TestScaleCPUAndMemory) run only with VIPD_BENCH=1 (make bench-lab).
package integration
