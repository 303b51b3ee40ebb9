package coord

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// FuzzArbiterSnapshot feeds the arbiter's reader of arbiter/ keys (written
// by peers, or by hand) any key and value: it never panics, keeps only
// claims that name a node, and never takes this node's own request for
// another's.
func FuzzArbiterSnapshot(f *testing.F) {
	f.Add("/vipd/arbiter/claim/VI_1", []byte(`{"node":"n2","vrid":51,"priority":150}`))
	f.Add("/vipd/arbiter/preempt/VI_1/n3", []byte(`{"node":"n3","priority":200}`))
	f.Add("/vipd/arbiter/preempt/VI_1/n1", []byte(`{"priority":200}`))
	f.Add("/vipd/arbiter/claim/", []byte(`{}`))
	f.Add("/vipd/arbiter/claim/VI_1/x", []byte(`{"node":""}`))
	f.Add("/vipd/arbiter/claim/VI_1", []byte(`banana`))
	a := NewArbiter(nil, ArbiterConfig{Prefix: "/vipd", Node: "n1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		st := &loopState{inflight: map[string]ArbActionKind{}, local: map[string]localClaim{}, claimedAt: map[string]time.Time{}, asking: map[string]bool{}}
		a.absorb(st, map[string]*mvccpb.KeyValue{key: {Key: []byte(key), Value: value, CreateRevision: 7, Lease: 9}}, 7)
		for inst, c := range st.claims {
			if c.Node == "" || inst == "" || c.Rev != 7 || c.Lease != 9 {
				t.Fatalf("claim %q kept as %+v", inst, c)
			}
		}
		for inst, rs := range st.requests {
			for _, r := range rs {
				if r.Node == "n1" || inst == "" {
					t.Fatalf("request of %q for %q: %+v", r.Node, inst, r)
				}
			}
		}
	})
}
