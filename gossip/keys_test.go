package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/api"
)

var (
	oldKey = bytes.Repeat([]byte{0x01}, 32)
	newKey = bytes.Repeat([]byte{0x02}, 32)
)

func b64(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// keyrings is every node's answer as "node: ok *fp1 fp2" (or its error),
// one per line, with fingerprints named after the test keys.
func keyrings(res api.KeysResult) string {
	names := map[string]string{
		api.KeyFingerprint(oldKey): "OLD",
		api.KeyFingerprint(newKey): "NEW",
	}
	var lines []string
	for _, n := range res.Nodes {
		l := n.Node + ":"
		if n.OK {
			l += " ok"
		} else {
			l += " error " + n.Error
		}
		for _, k := range n.Keys {
			name := names[k.Fingerprint]
			if name == "" {
				name = k.Fingerprint
			}
			if k.Primary {
				name = "*" + name
			}
			l += " " + name
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// keysOp runs op from n and fails the test unless every node answers ok.
func keysOp(t *testing.T, n *testNode, op api.KeyOp) api.KeysResult {
	t.Helper()
	res, err := n.Keys(context.Background(), op)
	if err != nil {
		t.Fatalf("%s from %s: %v", op.Op, n.cfg.NodeName, err)
	}
	for _, a := range res.Nodes {
		if !a.OK {
			t.Fatalf("%s from %s:\n%s", op.Op, n.cfg.NodeName, keyrings(res))
		}
	}
	return res
}

func wantKeyrings(t *testing.T, n *testNode, want ...string) {
	t.Helper()
	res := keysOp(t, n, api.KeyOp{Op: api.KeyOpList})
	if d := cmp.Diff(strings.Join(want, "\n"), keyrings(res)); d != "" {
		t.Errorf("list from %s (-want +got):\n%s", n.cfg.NodeName, d)
	}
}

// readSaved is the keyring saved next to a key file, as key names.
func readSaved(t *testing.T, keyFile string) string {
	t.Helper()
	p := keyFile + keyringSuffix
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", p, st.Mode().Perm())
	}
	keys, err := readKeyringFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range keys {
		switch {
		case bytes.Equal(k, oldKey):
			names = append(names, "OLD")
		case bytes.Equal(k, newKey):
			names = append(names, "NEW")
		default:
			names = append(names, "?")
		}
	}
	return strings.Join(names, " ")
}

func encryptedThreeNodes(t *testing.T, o nodeOpts) (a, b, c *testNode, files [3]string) {
	t.Helper()
	for i := range files {
		files[i] = writeKey(t, oldKey)
	}
	a = startNode(t, "node-a", newFakeLocal(NodeState{}), nodeOpts{keyFile: files[0]})
	b = startNode(t, "node-b", newFakeLocal(NodeState{}), nodeOpts{keyFile: files[1], join: []string{a.Addr()}})
	o.keyFile, o.join = files[2], []string{a.Addr()}
	c = startNode(t, "node-c", newFakeLocal(NodeState{}), o)
	eventually(t, within, func() (bool, string) {
		for _, n := range []*testNode{a, b, c} {
			if s := states(n.Fleet()); s != "node-a=alive node-b=alive node-c=alive" {
				return false, n.cfg.NodeName + ": " + s
			}
		}
		return true, ""
	})
	return a, b, c, files
}

func TestKeyRotationAcrossTheFleet(t *testing.T) {
	t.Parallel()
	a, b, c, files := encryptedThreeNodes(t, nodeOpts{})
	wantKeyrings(t, c, "node-a: ok *OLD", "node-b: ok *OLD", "node-c: ok *OLD")
	if _, err := os.Stat(files[0] + keyringSuffix); err == nil {
		t.Errorf("a keyring file was written by a list")
	}

	// Install the new key everywhere (from node-b), then use it (from
	// node-c), then remove the old one (from node-a): every step from any
	// node reaches them all.
	keysOp(t, b, api.KeyOp{Op: api.KeyOpInstall, Key: b64(newKey)})
	wantKeyrings(t, a, "node-a: ok *OLD NEW", "node-b: ok *OLD NEW", "node-c: ok *OLD NEW")
	keysOp(t, c, api.KeyOp{Op: api.KeyOpUse, Key: b64(newKey) + "\n"})
	wantKeyrings(t, a, "node-a: ok *NEW OLD", "node-b: ok *NEW OLD", "node-c: ok *NEW OLD")
	res := keysOp(t, a, api.KeyOp{Op: api.KeyOpRemove, Key: b64(oldKey)})
	if got := keyrings(res); got != "node-a: ok\nnode-b: ok\nnode-c: ok" {
		t.Errorf("remove answers:\n%s", got)
	}
	wantKeyrings(t, b, "node-a: ok *NEW", "node-b: ok *NEW", "node-c: ok *NEW")
	for i, f := range files {
		if got := readSaved(t, f); got != "NEW" {
			t.Errorf("node %d saved keyring %q, want NEW", i, got)
		}
	}
	// The fleet still gossips.
	eventually(t, within, func() (bool, string) {
		s := states(c.Fleet())
		return s == "node-a=alive node-b=alive node-c=alive", s
	})

	// A node with only the new key joins; one with only the old key
	// cannot.
	d := startNode(t, "node-d", newFakeLocal(NodeState{}), nodeOpts{keyFile: writeKey(t, newKey), join: []string{a.Addr()}})
	eventually(t, within, func() (bool, string) {
		s := states(a.Fleet())
		return s == "node-a=alive node-b=alive node-c=alive node-d=alive", s
	})
	o := startNode(t, "node-o", newFakeLocal(NodeState{}), nodeOpts{keyFile: writeKey(t, oldKey), rejoinEvery: time.Hour})
	if n, err := o.Join([]string{a.Addr()}); err == nil {
		t.Errorf("a node with only the old key joined (%d contacted)", n)
	}
	if _, ok := fleetNode(a.Fleet(), "node-o"); ok {
		t.Error("node-a lists the node with the old key")
	}

	// A restarted node loads its saved keyring, not its key file (which
	// still holds the old key): the old key stays removed.
	addr := c.Addr()
	c.stop(t)
	eventually(t, within, func() (bool, string) {
		nc, _ := fleetNode(a.Fleet(), "node-c")
		return nc.State == stateLeft, "node-c is " + nc.State
	})
	res, err := a.Keys(context.Background(), api.KeyOp{Op: api.KeyOpList})
	if err != nil || !strings.Contains(keyrings(res), "node-c: error not reached: the node is left") {
		t.Errorf("list while node-c is gone: %v\n%s", err, keyrings(res))
	}
	c2 := startNode(t, "node-c", newFakeLocal(NodeState{}), nodeOpts{keyFile: files[2], bind: addr, join: []string{d.Addr()}})
	eventually(t, within, func() (bool, string) {
		s := states(a.Fleet())
		return s == "node-a=alive node-b=alive node-c=alive node-d=alive", s
	})
	wantKeyrings(t, c2, "node-a: ok *NEW", "node-b: ok *NEW", "node-c: ok *NEW", "node-d: ok *NEW")
}

func TestKeyOperationsRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, _, _ := encryptedThreeNodes(t, nodeOpts{})
	for _, tc := range []struct {
		name string
		op   api.KeyOp
		want string
	}{
		{"no operation", api.KeyOp{}, "no operation"},
		{"unknown operation", api.KeyOp{Op: "rotate"}, `unknown operation "rotate"`},
		{"list with a key", api.KeyOp{Op: api.KeyOpList, Key: b64(newKey)}, "takes no key"},
		{"install without a key", api.KeyOp{Op: api.KeyOpInstall}, "no key given"},
		{"install not base64", api.KeyOp{Op: api.KeyOpInstall, Key: "not*base64!"}, "not base64"},
		{"install of 10 bytes", api.KeyOp{Op: api.KeyOpInstall, Key: b64([]byte("0123456789"))}, "key of 10 bytes"},
		{"use of a key not held", api.KeyOp{Op: api.KeyOpUse, Key: b64(newKey)}, "does not hold the key " + api.KeyFingerprint(newKey)},
		{"remove of the primary key", api.KeyOp{Op: api.KeyOpRemove, Key: b64(oldKey)}, "is this node's primary key"},
	} {
		res, err := a.Keys(ctx, tc.op)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %+v: want an error saying %q", tc.name, err, res, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), b64(newKey)) {
			t.Errorf("%s: the error quotes the key: %v", tc.name, err)
		}
	}
	// Nothing was sent: the keyrings are as they were.
	wantKeyrings(t, b, "node-a: ok *OLD", "node-b: ok *OLD", "node-c: ok *OLD")

	// Without encryption, and before Run.
	p := startNode(t, "node-p", newFakeLocal(NodeState{}), nodeOpts{})
	if _, err := p.Keys(ctx, api.KeyOp{Op: api.KeyOpList}); err == nil || err.Error() != "gossip is not encrypted: start every node with --gossip-key-file" {
		t.Errorf("keys without encryption: %v", err)
	}
	idle, err := New(Config{NodeName: "idle", KeyFile: writeKey(t, oldKey), Log: testLog()}, newFakeLocal(NodeState{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Keys(ctx, api.KeyOp{Op: api.KeyOpList}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("keys before Run: %v", err)
	}
}

func TestKeyOperationsFailingOnSomeNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := &partition{}
	a, b, _, _ := encryptedThreeNodes(t, nodeOpts{wrap: wrapWith(pc)})
	third := bytes.Repeat([]byte{0x03}, 16)

	// node-b alone makes the new key primary: node-a's remove of it fails
	// on node-b, whose answer node-a still reads (it removes last).
	keysOp(t, a, api.KeyOp{Op: api.KeyOpInstall, Key: b64(newKey)})
	if _, err := b.keys.apply(api.KeyOpUse, newKey); err != nil {
		t.Fatal(err)
	}
	res, err := a.Keys(ctx, api.KeyOp{Op: api.KeyOpRemove, Key: b64(newKey)})
	if err != nil {
		t.Fatal(err)
	}
	want := "node-a: ok\n" +
		"node-b: error the key " + api.KeyFingerprint(newKey) + " is this node's primary key: make another key primary first (vipd keys use)\n" +
		"node-c: ok"
	if d := cmp.Diff(want, keyrings(res)); d != "" {
		t.Errorf("remove (-want +got):\n%s", d)
	}
	if _, err := b.keys.apply(api.KeyOpUse, oldKey); err != nil {
		t.Fatal(err)
	}

	// A key only node-a holds: the others refuse to use it.
	if _, err := a.keys.apply(api.KeyOpInstall, third); err != nil {
		t.Fatal(err)
	}
	res, err = a.Keys(ctx, api.KeyOp{Op: api.KeyOpUse, Key: b64(third)})
	if err != nil {
		t.Fatal(err)
	}
	notHeld := "error this node does not hold the key " + api.KeyFingerprint(third) + ": install it on every node first (vipd keys install)"
	if d := cmp.Diff("node-a: ok\nnode-b: "+notHeld+"\nnode-c: "+notHeld, keyrings(res)); d != "" {
		t.Errorf("use (-want +got):\n%s", d)
	}
	if _, err := a.keys.apply(api.KeyOpUse, oldKey); err != nil {
		t.Fatal(err)
	}

	// A node whose answer does not come back.
	pc.block(a.Addr())
	res, err = a.Keys(ctx, api.KeyOp{Op: api.KeyOpList})
	if err != nil {
		t.Fatal(err)
	}
	want = "node-a: ok *OLD " + api.KeyFingerprint(third) + "\n" +
		"node-b: ok *OLD NEW\n" + // it refused the remove
		"node-c: error " // no answer, or seen dead meanwhile
	if got := keyrings(res); !strings.HasPrefix(got, want) {
		t.Errorf("list with node-c cut off:\n%s\nwant a failure for node-c", got)
	}
	pc.heal()
}

// TestRemovingAKeyUnderTraffic: removing a key that is not the last one
// while packets are being decrypted with the keys after it (node-b and
// node-c encrypt with a key node-a holds third) is free of data races
// (go test -race; memberlist's RemoveKey alone is not).
func TestRemovingAKeyUnderTraffic(t *testing.T) {
	t.Parallel()
	a, b, c, _ := encryptedThreeNodes(t, nodeOpts{})
	for _, n := range []*testNode{a, b, c} {
		if _, err := n.keys.apply(api.KeyOpInstall, newKey); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*testNode{b, c} {
		if _, err := n.keys.apply(api.KeyOpUse, newKey); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		k := bytes.Repeat([]byte{byte(i + 10)}, 16)
		for _, step := range []struct {
			op  string
			key []byte
		}{{"remove", newKey}, {"install", newKey}, {"install", k}, {"remove", newKey}, {"install", newKey}, {"remove", k}} {
			if _, err := a.keys.apply(step.op, step.key); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantKeyrings(t, a, "node-a: ok *OLD NEW", "node-b: ok *NEW OLD", "node-c: ok *NEW OLD")
}

func TestKeyringFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := writeKey(t, oldKey)
	kr, err := loadKeyring(keyFile, testLog())
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.infoLocked(); len(got) != 1 || got[0] != (api.KeyInfo{Fingerprint: api.KeyFingerprint(oldKey), Primary: true}) {
		t.Errorf("from the key file: %+v", got)
	}

	// Changes are saved and loaded back instead of the key file, in
	// order, the primary first.
	k3, k4 := bytes.Repeat([]byte{3}, 16), bytes.Repeat([]byte{4}, 24)
	for _, step := range []struct {
		op  string
		key []byte
	}{{"install", newKey}, {"install", k3}, {"install", k4}, {"install", k3}, {"use", newKey}, {"remove", oldKey}, {"remove", oldKey}} {
		if _, err := kr.apply(step.op, step.key); err != nil {
			t.Fatalf("%s: %v", step.op, err)
		}
	}
	again, err := loadKeyring(keyFile, testLog())
	if err != nil {
		t.Fatal(err)
	}
	want := []api.KeyInfo{
		{Fingerprint: api.KeyFingerprint(newKey), Primary: true},
		{Fingerprint: api.KeyFingerprint(k3)},
		{Fingerprint: api.KeyFingerprint(k4)},
	}
	if d := cmp.Diff(want, again.infoLocked()); d != "" {
		t.Errorf("loaded back (-want +got):\n%s", d)
	}
	// Removing a key in the middle keeps the order of the others.
	if _, err := again.apply("remove", k3); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]api.KeyInfo{want[0], want[2]}, again.infoLocked()); d != "" {
		t.Errorf("after removing the middle key (-want +got):\n%s", d)
	}
	entries, _ := os.ReadDir(filepath.Dir(keyFile))
	if len(entries) != 2 {
		t.Errorf("files next to the key file: %v, want the key file and its keyring", entries)
	}
	data, _ := os.ReadFile(keyFile + keyringSuffix)
	var texts []string
	if err := json.Unmarshal(data, &texts); err != nil || !cmp.Equal(texts, []string{b64(newKey), b64(k4)}) {
		t.Errorf("keyring file %q: want a JSON list of base64 keys, primary first", data)
	}
	if _, err := again.apply("use", k3); err == nil || !strings.Contains(err.Error(), "does not hold") {
		t.Errorf("use of a removed key: %v", err)
	}
	if _, err := again.apply("remove", newKey); err == nil || !strings.Contains(err.Error(), "primary") {
		t.Errorf("remove of the primary key: %v", err)
	}

	// A save that fails is an error (the change holds until a restart).
	ro := &keyring{ml: again.ml, file: filepath.Join(dir, "missing", "gossip.key.keyring")}
	if _, err := ro.apply("install", k3); err == nil || !strings.Contains(err.Error(), "not saved") {
		t.Errorf("unsaved change: %v", err)
	}

	// Bad keyring files are refused, naming the file.
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"readable by group", `["` + b64(newKey) + `"]`, 0o640, "mode 0640"},
		{"not JSON", b64(newKey), 0o600, "JSON list"},
		{"empty list", `[]`, 0o600, "no key"},
		{"bad key", `["` + b64(newKey) + `","AAAA"]`, 0o600, "key 2: key of 3 bytes"},
		{"not base64", `["` + b64(newKey) + `","***"]`, 0o600, "key 2: the key is not base64"},
	} {
		kf := writeKey(t, oldKey)
		p := kf + keyringSuffix
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := New(Config{NodeName: "n", KeyFile: kf, Log: testLog()}, newFakeLocal(NodeState{}))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v: want an error naming %s and saying %q", tc.name, err, p, tc.want)
		}
	}
}

func TestKeyMessagesRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind msgKind
		body any
		want keyMessage
	}{
		{kindKeyReq, keyReq{ID: 3, From: "n1", Op: "install", Key: b64(newKey)},
			keyMessage{Kind: kindKeyReq, Req: &keyReq{ID: 3, From: "n1", Op: "install", Key: b64(newKey)}}},
		{kindKeyResp, keyResp{ID: 3, From: "n2", Keys: []api.KeyInfo{{Fingerprint: "sha256:00", Primary: true}}},
			keyMessage{Kind: kindKeyResp, Resp: &keyResp{ID: 3, From: "n2", Keys: []api.KeyInfo{{Fingerprint: "sha256:00", Primary: true}}}}},
	} {
		b, err := encodeMessage(tc.kind, tc.body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeKeyMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.kind, d)
		}
	}
	long, _ := encodeMessage(kindKeyReq, keyReq{ID: 1, From: "n1", Op: "use", Key: strings.Repeat("A", 200)})
	state, _ := encodeMessage(kindState, stateReq{From: "n1"})
	noName, _ := encodeMessage(kindKeyResp, keyResp{ID: 1})
	for name, b := range map[string][]byte{"long key": long, "not a key kind": state, "no sender": noName, "short": {1, 6}} {
		if _, err := decodeKeyMessage(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecodeKeyMessage: whatever arrives, decoding a keyring message
// returns a valid one or an error, never panics; a decoded message encodes
// and decodes to itself.
func FuzzDecodeKeyMessage(f *testing.F) {
	for _, body := range []struct {
		kind msgKind
		v    any
	}{
		{kindKeyReq, keyReq{ID: 1, From: "n1", Op: "install", Key: b64(newKey)}},
		{kindKeyResp, keyResp{ID: 1, From: "n2", Error: "no", Keys: []api.KeyInfo{{Fingerprint: "sha256:00"}}}},
	} {
		b, err := encodeMessage(body.kind, body.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeKeyMessage(b)
		if err != nil {
			return
		}
		var body any = m.Req
		if m.Kind == kindKeyResp {
			body = m.Resp
		}
		again, err := encodeMessage(m.Kind, body)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", m, err)
		}
		m2, err := decodeKeyMessage(again)
		if err != nil {
			t.Fatalf("decoding the re-encoded message: %v", err)
		}
		if d := cmp.Diff(m, m2, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}
