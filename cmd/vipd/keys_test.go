package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/api"
)

// keysFake answers vipd keys with a chosen result or error and records
// the operations.
type keysFake struct {
	fakeAgent
	mu  sync.Mutex
	ops []api.KeyOp
	res api.KeysResult
	err error
}

func (f *keysFake) Keys(_ context.Context, op api.KeyOp) (api.KeysResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
	return f.res, f.err
}

func (f *keysFake) got() []api.KeyOp {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.KeyOp(nil), f.ops...)
}

const (
	testKeyNew = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=" // 32 × 0x02
	// Fingerprints as the daemon reports them (any two will do).
	fpNew = "sha256:0bd1f2e1b4e1c1a4"
	fpOld = "sha256:72cd6e8422c407fb"
)

func TestKeysListPrintsEveryNode(t *testing.T) {
	fa := &keysFake{res: api.KeysResult{Nodes: []api.KeyNode{
		{Node: "lb1", OK: true, Keys: []api.KeyInfo{{Fingerprint: fpNew, Primary: true}, {Fingerprint: fpOld}}},
		{Node: "lb2", OK: true, Keys: []api.KeyInfo{{Fingerprint: fpOld}, {Fingerprint: fpNew, Primary: true}}},
	}}}
	socket := serve(t, fa)
	r, _ := vipd(t, "keys", "list", "--socket", socket)
	want := "NODE  ANSWER  KEYS (*primary)\n" +
		"lb1   ok      *" + fpNew + "  " + fpOld + "\n" +
		"lb2   ok      *" + fpNew + "  " + fpOld + "\n" +
		"keys list: 2 nodes answered, all with the same keyring\n"
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	if d := cmp.Diff(want, r.stdout); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if d := cmp.Diff([]api.KeyOp{{Op: "list"}}, fa.got()); d != "" {
		t.Errorf("operations (-want +got):\n%s", d)
	}

	// One node without an answer, one with another keyring: exit 1.
	fa.res.Nodes = append(fa.res.Nodes,
		api.KeyNode{Node: "lb3", Error: "no answer within 5s"},
		api.KeyNode{Node: "lb4", OK: true, Keys: []api.KeyInfo{{Fingerprint: fpOld, Primary: true}}})
	t.Setenv("VIPD_SOCKET", socket)
	r, _ = vipd(t, "keys", "list")
	want = "NODE  ANSWER  KEYS (*primary)\n" +
		"lb1   ok      *" + fpNew + "  " + fpOld + "\n" +
		"lb2   ok      *" + fpNew + "  " + fpOld + "\n" +
		"lb3   FAILED  no answer within 5s\n" +
		"lb4   ok      *" + fpOld + "\n" +
		"keys list: 3 of 4 nodes ok\n"
	if d := cmp.Diff(want, r.stdout); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if r.code != 1 || r.stderr != "vipd: keys list: 1 node of 4 failed or did not answer: fix them and repeat this command before going on\n" {
		t.Errorf("exit %d stderr %q, want 1", r.code, r.stderr)
	}
	fa.res.Nodes = append(fa.res.Nodes[:2], fa.res.Nodes[3])
	r, _ = vipd(t, "keys", "list")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "keys list: 3 nodes answered; their keyrings differ\n") {
		t.Errorf("differing keyrings: exit %d stdout %q", r.code, r.stdout)
	}
}

func TestKeysChangesSendTheKeyAndReportEachNode(t *testing.T) {
	fa := &keysFake{res: api.KeysResult{Nodes: []api.KeyNode{{Node: "lb1", OK: true}, {Node: "lb2", OK: true}}}}
	socket := serve(t, fa)
	// What the help's recipe says: base64 -d <<<KEY | sha256sum | cut -c1-16
	fp := "sha256:75877bb41d393b5f"
	if got := api.KeyFingerprint([]byte(strings.Repeat("\x02", 32))); got != fp {
		t.Fatalf("fingerprint %q, want %q", got, fp)
	}
	for _, tc := range []struct{ op, next string }{
		{"install", "; next: vipd keys use KEY"},
		{"use", "; next: vipd keys remove OLD_KEY"},
		{"remove", ""},
	} {
		r, _ := vipd(t, "keys", tc.op, testKeyNew, "--socket", socket)
		want := "NODE  ANSWER\nlb1   ok\nlb2   ok\nkeys " + tc.op + " " + fp + ": ok on every node (2)" + tc.next + "\n"
		if r.code != 0 || r.stderr != "" || r.stdout != want {
			t.Errorf("%s: exit %d stdout %q stderr %q, want 0 and %q", tc.op, r.code, r.stdout, r.stderr, want)
		}
		if strings.Contains(r.stdout, testKeyNew) {
			t.Errorf("%s printed the key", tc.op)
		}
	}
	// --key-file instead of the command line.
	kf := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(kf, []byte(testKeyNew+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, _ := vipd(t, "keys", "install", "--key-file", kf, "--socket", socket); r.code != 0 {
		t.Errorf("--key-file: exit %d stderr %q", r.code, r.stderr)
	}
	want := []api.KeyOp{{Op: "install", Key: testKeyNew}, {Op: "use", Key: testKeyNew}, {Op: "remove", Key: testKeyNew}, {Op: "install", Key: testKeyNew}}
	if d := cmp.Diff(want, fa.got()); d != "" {
		t.Errorf("operations (-want +got):\n%s", d)
	}

	// A node that refuses: its error, exit 1.
	fa.res.Nodes[1] = api.KeyNode{Node: "lb2", Error: "this node does not hold the key " + fp + ": install it on every node first (vipd keys install)"}
	r, _ := vipd(t, "keys", "use", testKeyNew, "--socket", socket)
	wantOut := "NODE  ANSWER\n" +
		"lb1   ok\n" +
		"lb2   FAILED  this node does not hold the key " + fp + ": install it on every node first (vipd keys install)\n" +
		"keys use " + fp + ": 1 of 2 nodes ok\n"
	if r.code != 1 || r.stdout != wantOut || !strings.Contains(r.stderr, "1 node of 2 failed") {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestKeysRefusedOrMisused(t *testing.T) {
	refused := serve(t, &keysFake{err: errors.New("gossip is not encrypted: start every node with --gossip-key-file")})
	r, _ := vipd(t, "keys", "list", "--socket", refused)
	if r.code != 1 || r.stdout != "" || r.stderr != "vipd: gossip is not encrypted: start every node with --gossip-key-file\n" {
		t.Errorf("refused: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	// Gossip off: the plain fake agent's answer.
	off := serve(t, &fakeAgent{fleetErr: errors.New("gossip is off on this node: start vipd run with --gossip-bind or --join")})
	if r, _ := vipd(t, "keys", "list", "--socket", off); r.code != 1 || !strings.Contains(r.stderr, "gossip is off") {
		t.Errorf("gossip off: exit %d stderr %q", r.code, r.stderr)
	}
	if r, _ := vipd(t, "keys", "list", "--socket", filepath.Join(t.TempDir(), "none.sock")); r.code != 1 || !strings.Contains(r.stderr, "is `vipd run` running?") {
		t.Errorf("no daemon: exit %d stderr %q", r.code, r.stderr)
	}

	fa := &keysFake{}
	socket := serve(t, fa)
	kf := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(kf, []byte(testKeyNew), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys"}, "accepts between 1 and 2 arg(s)"},
		{[]string{"keys", "rotate"}, `keys "rotate": want list, install, use or remove`},
		{[]string{"keys", "install"}, "keys install: KEY is required"},
		{[]string{"keys", "remove"}, "keys remove: KEY is required"},
		{[]string{"keys", "list", testKeyNew}, "keys list takes no KEY"},
		{[]string{"keys", "install", testKeyNew, "--key-file", kf}, "not both"},
		{[]string{"keys", "install", "a", "b", "c"}, "accepts between 1 and 2 arg(s)"},
	} {
		r, _ := vipd(t, append(tc.args, "--socket", socket)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("vipd %s: exit %d stderr %q, want 2 and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
	if got := fa.got(); len(got) != 0 {
		t.Errorf("misuses reached the daemon: %+v", got)
	}
}

func TestKeysHelpTeachesTheRotation(t *testing.T) {
	r, _ := vipd(t, "keys", "--help")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, w := range []string{
		"keys list|install|use|remove [KEY]", "--socket", "--key-file", "Examples:",
		"head -c 32 /dev/urandom | base64", `vipd keys install "$NEW"`, `vipd keys use "$NEW"`, `vipd keys remove "$OLD"`,
		"must answer ok before the next step", "fingerprint", "FILE.keyring",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("vipd keys --help lacks %q", w)
		}
	}
	if r, _ := vipd(t, "--help"); !strings.Contains(r.stdout, "keys") {
		t.Error("vipd --help does not list keys")
	}
}
