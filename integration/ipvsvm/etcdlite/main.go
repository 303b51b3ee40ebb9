// Command etcdlite is a single-member etcd for the VM of integration/ipvsvm:
// go.etcd.io/etcd/server/v3/embed in a static binary (the harness builds it
// with CGO_ENABLED=0), so that the VM needs no etcd package and no shared
// libraries for it.
//
// It serves clients on -listen-client (http://127.0.0.1:2379), its peer
// port on -listen-peer (http://127.0.0.1:2380), with its data in -data-dir,
// prints "etcdlite: ready" on stdout once it serves, and stops on SIGTERM or
// SIGINT. Its logs (warnings and errors) go to stderr. It is a test fixture:
// no fsync, small WAL segments, no TLS, no auth.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
)

func main() {
	client := flag.String("listen-client", "http://127.0.0.1:2379", "client URL to listen on and advertise")
	peer := flag.String("listen-peer", "http://127.0.0.1:2380", "peer URL to listen on and advertise")
	dir := flag.String("data-dir", "", "data directory (required)")
	timeout := flag.Duration("start-timeout", time.Minute, "how long the member may take to serve")
	flag.Parse()
	if err := run(*client, *peer, *dir, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "etcdlite: %v\n", err)
		os.Exit(1)
	}
}

func run(client, peer, dir string, timeout time.Duration) error {
	if dir == "" {
		return fmt.Errorf("-data-dir is required")
	}
	cu, err := url.Parse(client)
	if err != nil {
		return fmt.Errorf("-listen-client: %w", err)
	}
	pu, err := url.Parse(peer)
	if err != nil {
		return fmt.Errorf("-listen-peer: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "etcdlite"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.InitialClusterToken = "etcdlite"
	// etcd's defaults (100 ms heartbeat, 1 s election): shorter ones make an
	// emulated CPU call spurious elections.
	cfg.TickMs = 100
	cfg.ElectionMs = 1000
	cfg.UnsafeNoFsync = true // the VM's root is in memory anyway
	// In memory too: each WAL segment is preallocated, 64 MB by default,
	// and the next one is prepared ahead (128 MB of a 512 MB VM).
	wal.SegmentSizeBytes = 4 << 20
	cfg.EnableGRPCGateway = false
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return err
	case s := <-sig:
		return fmt.Errorf("%v before it served", s)
	case <-time.After(timeout):
		return fmt.Errorf("not serving after %v", timeout)
	}
	fmt.Println("etcdlite: ready")
	select {
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
}
