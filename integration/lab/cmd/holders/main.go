// Command holders samples, every 20 ms for a while, which lab nodes hold an address, through a
// netlink handle in each node's namespace (no process per sample), as scripts/demo.sh does
// around reloads, restarts and a split brain:
//
//	holders ADDR SECONDS WANT NS...
//
// NS is a network namespace name (ip netns); the node's name is what follows the last '-'. It
// fails (exit status 1) at the first sample where another node than WANT, or two nodes, or
// nobody holds ADDR, and otherwise prints how many samples it took.
package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const every = 20 * time.Millisecond

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "holders: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, w io.Writer) error {
	if len(args) < 4 {
		return errors.New("usage: holders ADDR SECONDS WANT NS [NS ...]")
	}
	addr, err := netip.ParseAddr(args[0])
	if err != nil {
		return fmt.Errorf("address %q: %w", args[0], err)
	}
	secs, err := strconv.ParseFloat(args[1], 64)
	if err != nil || secs <= 0 {
		return fmt.Errorf("seconds %q: want a positive number", args[1])
	}
	want := args[2]
	type node struct {
		name string
		h    *netlink.Handle
	}
	var nodes []node
	for _, ns := range args[3:] {
		nh, err := netns.GetFromName(ns)
		if err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
		h, err := netlink.NewHandleAt(nh)
		nh.Close()
		if err != nil {
			return fmt.Errorf("netlink in %s: %w", ns, err)
		}
		defer h.Close()
		nodes = append(nodes, node{ns[strings.LastIndexByte(ns, '-')+1:], h})
	}
	end := time.Now().Add(time.Duration(secs * float64(time.Second)))
	samples := 0
	for time.Now().Before(end) {
		var held []string
		for _, n := range nodes {
			as, err := n.h.AddrList(nil, netlink.FAMILY_ALL)
			if err != nil {
				return fmt.Errorf("addresses of %s: %w", n.name, err)
			}
			for _, a := range as {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
					held = append(held, n.name)
					break
				}
			}
		}
		samples++
		if len(held) != 1 || held[0] != want {
			return fmt.Errorf("sample %d at %s: %s held by %q, want %s alone", samples, time.Now().Format("15:04:05.000"), addr, held, want)
		}
		time.Sleep(every)
	}
	fmt.Fprintf(w, "%d samples in %gs, one every %v: %s alone held %s in every one\n", samples, secs, every, want, addr)
	return nil
}
