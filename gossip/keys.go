package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vipd/vipd/api"
)

// The gossip keyring and its operations across the fleet (vipd keys; see
// doc.go, "Key rotation").

const (
	// keyringSuffix names the keyring file: KeyFile + keyringSuffix.
	keyringSuffix = ".keyring"
	// keyTimeout bounds the wait for each node's answer to a key
	// operation.
	keyTimeout = 5 * time.Second
	// maxKeyHandlers bounds the key requests of other nodes handled at
	// once.
	maxKeyHandlers = 4
	// maxKeyringKeys bounds the keys of a keyring file and of an answer.
	maxKeyringKeys = 64
	// maxKeyText bounds the base64 key of a request (32 bytes are 44).
	maxKeyText = 128
	// maxKeyringFile bounds the size of a keyring file.
	maxKeyringFile = 64 << 10
)

var errNotEncrypted = errors.New("gossip is not encrypted: start every node with --gossip-key-file")

// keyring is this node's gossip keyring: the memberlist keyring that
// encrypts and decrypts gossip, where its changes are saved, and the key
// operations waiting for other nodes' answers.
type keyring struct {
	ml    *memberlist.Keyring // primary key first
	file  string              // KeyFile + keyringSuffix
	slots chan struct{}       // bounds the requests of other nodes handled at once

	// mu serializes the changes of ml and their saving. memberlist
	// itself reads ml at any time (every packet).
	mu sync.Mutex

	wait waiters[keyResp] // key operations sent, waiting for their answers
}

// keyReq carries a keyring operation to a node. The key travels inside
// the encrypted gossip only (key operations need encryption).
type keyReq struct {
	ID   uint64 `json:"id"`
	From string `json:"from"`
	Op   string `json:"op"`
	Key  string `json:"key,omitempty"` // base64
}

// keyResp answers a keyReq: Error is "" when the node applied it; Keys
// (list) are the keys it holds, as fingerprints, primary first.
type keyResp struct {
	ID    uint64        `json:"id"`
	From  string        `json:"from"`
	Error string        `json:"error,omitempty"`
	Keys  []api.KeyInfo `json:"keys,omitempty"`
}

// keyMessage is a decoded keyring message: Kind says which field is set.
type keyMessage struct {
	Kind msgKind
	Req  *keyReq
	Resp *keyResp
}

// loadKeyring builds the keyring at start: from keyFile+".keyring" when it
// exists (the keyring as vipd keys last left it: a key removed from the
// fleet stays removed across restarts), else from the key file alone.
func loadKeyring(keyFile string, log *slog.Logger) (*keyring, error) {
	kr := &keyring{
		file:  keyFile + keyringSuffix,
		slots: make(chan struct{}, maxKeyHandlers),
	}
	var keys [][]byte
	_, err := os.Stat(kr.file)
	switch {
	case err == nil:
		if keys, err = readKeyringFile(kr.file); err != nil {
			return nil, err
		}
		log.Info("gossip keyring loaded instead of the key file", "file", kr.file, "key_file", keyFile,
			"keys", len(keys), "primary", api.KeyFingerprint(keys[0]))
	case errors.Is(err, fs.ErrNotExist):
		key, err := readKeyFile(keyFile)
		if err != nil {
			return nil, err
		}
		keys = [][]byte{key}
	default:
		return nil, fmt.Errorf("gossip keyring file: %w", err)
	}
	if kr.ml, err = memberlist.NewKeyring(keys[1:], keys[0]); err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	return kr, nil
}

// readKeyringFile reads a keyring file: a JSON list of base64 keys (16, 24
// or 32 bytes each), the primary first, in a file neither group nor others
// may read or write.
func readKeyringFile(path string) ([][]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gossip keyring file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("gossip keyring file %s has mode %04o: group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	if st.Size() > maxKeyringFile {
		return nil, fmt.Errorf("gossip keyring file %s: %d bytes: too large for a keyring", path, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring file: %w", err)
	}
	var texts []string
	if err := json.Unmarshal(data, &texts); err != nil {
		return nil, fmt.Errorf("gossip keyring file %s: want a JSON list of base64 keys, primary first: %v", path, err)
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("gossip keyring file %s: no key (delete it to start from the key file)", path)
	}
	if len(texts) > maxKeyringKeys {
		return nil, fmt.Errorf("gossip keyring file %s: %d keys: at most %d", path, len(texts), maxKeyringKeys)
	}
	var keys [][]byte
	for i, text := range texts {
		key, err := decodeKey(text)
		if err != nil {
			return nil, fmt.Errorf("gossip keyring file %s: key %d: %v", path, i+1, err)
		}
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) }) {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// writeKeyringFile replaces the keyring file with keys (primary first),
// mode 0600, atomically: a temporary file in the same directory, synced,
// renamed over it, and the directory synced.
func writeKeyringFile(path string, keys [][]byte) (err error) {
	texts := make([]string, len(keys))
	for i, k := range keys {
		texts[i] = base64.StdEncoding.EncodeToString(k)
	}
	data, err := json.Marshal(texts)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(append(data, '\n')); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		derr = d.Sync()
		d.Close()
		if derr != nil {
			return fmt.Errorf("sync %s: %w", dir, derr)
		}
	}
	return nil
}

// decodeKey decodes a base64 key of 16, 24 or 32 bytes. Its errors never
// quote the key.
func decodeKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, errors.New("no key given (the base64 of 16, 24 or 32 random bytes: head -c 32 /dev/urandom | base64)")
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, errors.New("the key is not base64 (standard encoding; e.g. head -c 32 /dev/urandom | base64)")
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("key of %d bytes: must be 16, 24 or 32 bytes (e.g. head -c 32 /dev/urandom | base64)", len(key))
	}
	return key, nil
}

// parseKeyOp checks op and returns its key (nil for list).
func parseKeyOp(op api.KeyOp) ([]byte, error) {
	switch op.Op {
	case api.KeyOpList:
		if op.Key != "" {
			return nil, errors.New("keys list: takes no key")
		}
		return nil, nil
	case api.KeyOpInstall, api.KeyOpUse, api.KeyOpRemove:
	case "":
		return nil, errors.New("keys: no operation given: want list, install, use or remove")
	default:
		return nil, fmt.Errorf("keys: unknown operation %q: want list, install, use or remove", op.Op)
	}
	key, err := decodeKey(op.Key)
	if err != nil {
		return nil, fmt.Errorf("keys %s: %v", op.Op, err)
	}
	return key, nil
}

// keysLocked is a copy of the keys, primary first. memberlist hands out
// its own slice.
func (k *keyring) keysLocked() [][]byte {
	return slices.Clone(k.ml.GetKeys())
}

// indexLocked is the position of key in the keyring (0: primary), -1 when
// it is not held.
func (k *keyring) indexLocked(key []byte) int {
	return slices.IndexFunc(k.keysLocked(), func(x []byte) bool { return bytes.Equal(x, key) })
}

// infoLocked is the keyring as fingerprints, primary first.
func (k *keyring) infoLocked() []api.KeyInfo {
	keys := k.keysLocked()
	out := make([]api.KeyInfo, len(keys))
	for i, key := range keys {
		out[i] = api.KeyInfo{Fingerprint: api.KeyFingerprint(key), Primary: i == 0}
	}
	return out
}

func errNotHeld(key []byte) error {
	return fmt.Errorf("this node does not hold the key %s: install it on every node first (vipd keys install)", api.KeyFingerprint(key))
}

func errPrimary(key []byte) error {
	return fmt.Errorf("the key %s is this node's primary key: make another key primary first (vipd keys use)", api.KeyFingerprint(key))
}

// check refuses, before anything is sent, an operation that would cut
// this node off from the fleet: using a key it does not hold (it could not
// read the others once they use it) or removing its primary key (the
// others could not read it any more).
func (k *keyring) check(op string, key []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch i := k.indexLocked(key); {
	case op == api.KeyOpUse && i < 0:
		return fmt.Errorf("keys use: %w", errNotHeld(key))
	case op == api.KeyOpRemove && i == 0:
		return fmt.Errorf("keys remove: %w", errPrimary(key))
	}
	return nil
}

// apply applies a key operation (key as parseKeyOp returned it) to this
// node's keyring and saves it; for list it returns the keys. Like Serf:
// installing a key held and removing a key not held do nothing, using a
// key not held and removing the primary key are errors.
func (k *keyring) apply(op string, key []byte) ([]api.KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var err error
	switch op {
	case api.KeyOpList:
		return k.infoLocked(), nil
	case api.KeyOpInstall:
		err = k.ml.AddKey(slices.Clone(key))
	case api.KeyOpUse:
		if k.indexLocked(key) < 0 {
			return nil, errNotHeld(key)
		}
		err = k.ml.UseKey(slices.Clone(key))
	case api.KeyOpRemove:
		err = k.removeLocked(key)
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	if err != nil {
		return nil, err
	}
	if err := writeKeyringFile(k.file, k.keysLocked()); err != nil {
		return nil, fmt.Errorf("%s done, but the keyring was not saved (a restart loses it): %w", op, err)
	}
	return nil, nil
}

// removeLocked removes key from the keyring (nothing when not held; an
// error for the primary key). memberlist's RemoveKey shifts the keys after
// the removed one in place, inside the slice GetKeys handed to packets
// being decrypted at that moment (memberlist v0.7.0); removing the last
// key shifts nothing. So the keys after it are taken off from the end and
// added back (for that instant they decrypt nothing; after a rotation the
// old key is the last one anyway).
func (k *keyring) removeLocked(key []byte) error {
	keys := k.keysLocked()
	i := slices.IndexFunc(keys, func(x []byte) bool { return bytes.Equal(x, key) })
	switch {
	case i < 0:
		return nil
	case i == 0:
		return errPrimary(key)
	}
	for j := len(keys) - 1; j >= i; j-- {
		if err := k.ml.RemoveKey(keys[j]); err != nil {
			return err
		}
	}
	for _, after := range keys[i+1:] {
		if err := k.ml.AddKey(after); err != nil {
			return err
		}
	}
	return nil
}

// Keys applies a keyring operation across the fleet: it sends op to every
// alive member, waits for each answer (at most keyTimeout, or until ctx
// ends), then applies it here; the answers are by node name, this node,
// members that did not answer and members dead or gone (not reached: they
// keep their old keyring) included. The local node applies last, so that
// it still reads the answers of nodes that refuse the change.
//
// Refused before anything is sent: gossip without encryption or not
// running, an unknown operation, a malformed key, using a key this node
// does not hold, removing this node's primary key.
func (n *Node) Keys(ctx context.Context, op api.KeyOp) (api.KeysResult, error) {
	kr := n.keys
	if kr == nil {
		return api.KeysResult{}, errNotEncrypted
	}
	key, err := parseKeyOp(op)
	if err != nil {
		return api.KeysResult{}, err
	}
	if op.Op != api.KeyOpList {
		op.Key = base64.StdEncoding.EncodeToString(key)
	}
	type target struct {
		name string
		to   *memberlist.Node
	}
	var targets []target
	var out []api.KeyNode
	n.mu.Lock()
	ml := n.ml
	for name, m := range n.members {
		switch {
		case name == n.cfg.NodeName:
		case m.alive():
			targets = append(targets, target{name, m.mlNode(name)})
		default:
			out = append(out, api.KeyNode{Node: name,
				Error: fmt.Sprintf("not reached: the node is %s (it keeps the keyring it had)", m.state)})
		}
	}
	n.mu.Unlock()
	if ml == nil {
		return api.KeysResult{}, errors.New("keys: gossip is not running")
	}
	if err := kr.check(op.Op, key); err != nil {
		return api.KeysResult{}, err
	}

	answers := make([]api.KeyNode, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = n.sendKeyOp(ctx, ml, t.name, t.to, op)
		}()
	}
	wg.Wait()
	self := api.KeyNode{Node: n.cfg.NodeName, OK: true}
	if self.Keys, err = kr.apply(op.Op, key); err != nil {
		self.OK, self.Error = false, err.Error()
	}
	out = append(append(out, answers...), self)
	slices.SortFunc(out, func(a, b api.KeyNode) int { return strings.Compare(a.Node, b.Node) })

	failed := 0
	for _, a := range out {
		if !a.OK {
			failed++
		}
	}
	attrs := []any{"op", op.Op, "nodes", len(out), "failed", failed}
	if key != nil {
		attrs = append(attrs, "key", api.KeyFingerprint(key))
	}
	switch {
	case op.Op == api.KeyOpList:
		n.log.Debug("gossip keyring listed across the fleet", attrs...)
	case failed > 0:
		n.log.Warn("gossip keyring operation failed on some nodes", attrs...)
	default:
		n.log.Info("gossip keyring changed across the fleet", attrs...)
	}
	return api.KeysResult{Nodes: out}, nil
}

// sendKeyOp sends op to one member and waits for its answer.
func (n *Node) sendKeyOp(ctx context.Context, ml *memberlist.Memberlist, name string, to *memberlist.Node, op api.KeyOp) api.KeyNode {
	res := api.KeyNode{Node: name}
	kr := n.keys
	id, answer, done := kr.wait.add(name)
	defer done()

	wire, err := encodeMessage(kindKeyReq, keyReq{ID: id, From: n.cfg.NodeName, Op: op.Op, Key: op.Key})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	timer := time.NewTimer(keyTimeout)
	defer timer.Stop()
	sent := make(chan error, 1)
	go func() { sent <- ml.SendReliable(to, wire) }()
	for {
		select {
		case err := <-sent:
			if err != nil {
				n.metrics.error("send")
				res.Error = "not reached: " + err.Error()
				return res
			}
			n.metrics.message("sent", "keys")
			sent = nil
		case r := <-answer:
			res.OK, res.Error, res.Keys = r.Error == "", r.Error, r.Keys
			return res
		case <-timer.C:
			n.metrics.error("keys")
			res.Error = fmt.Sprintf("no answer within %s", keyTimeout)
			return res
		case <-ctx.Done():
			res.Error = "no answer: " + ctx.Err().Error()
			return res
		}
	}
}

// keysDelegate is the memberlist delegate with the keyring messages routed
// to receiveKeys; every other message goes to receive as before.
type keysDelegate struct{ *delegate }

func (d keysDelegate) NotifyMsg(b []byte) {
	if len(b) >= 2 && b[0] == wireVersion && (msgKind(b[1]) == kindKeyReq || msgKind(b[1]) == kindKeyResp) {
		d.n.receiveKeys(bytes.Clone(b))
		return
	}
	d.delegate.NotifyMsg(b)
}

// receiveKeys handles a keyring message from another node.
func (n *Node) receiveKeys(b []byte) {
	m, err := decodeKeyMessage(b)
	if err != nil {
		n.decodeError("message", err)
		return
	}
	n.metrics.message("received", "keys")
	switch m.Kind {
	case kindKeyReq:
		n.handleKeyReq(*m.Req)
	case kindKeyResp:
		n.keyAnswer(*m.Resp)
	}
}

// decodeKeyMessage decodes and validates a keyring message received from
// the network (the header and encodings of wire.go).
func decodeKeyMessage(b []byte) (keyMessage, error) {
	if len(b) == 0 {
		return keyMessage{}, errEmpty
	}
	if len(b) < 3 {
		return keyMessage{}, fmt.Errorf("message of %d bytes: too short", len(b))
	}
	if b[0] != wireVersion {
		return keyMessage{}, fmt.Errorf("wire version %d: want %d", b[0], wireVersion)
	}
	kind := msgKind(b[1])
	if kind != kindKeyReq && kind != kindKeyResp {
		return keyMessage{}, fmt.Errorf("%s: not a keyring message", kind)
	}
	body, err := decodeBody(b[2], b[3:])
	if err != nil {
		return keyMessage{}, fmt.Errorf("%s: %w", kind, err)
	}
	m := keyMessage{Kind: kind}
	if kind == kindKeyReq {
		m.Req = new(keyReq)
		err = unmarshal(body, m.Req)
		if err == nil {
			err = validName("from", m.Req.From)
		}
		if err == nil && len(m.Req.Key) > maxKeyText {
			err = fmt.Errorf("key of %d characters: too long", len(m.Req.Key))
		}
	} else {
		m.Resp = new(keyResp)
		err = unmarshal(body, m.Resp)
		if err == nil {
			err = validName("from", m.Resp.From)
		}
		if err == nil && len(m.Resp.Keys) > maxKeyringKeys {
			err = fmt.Errorf("%d keys: at most %d", len(m.Resp.Keys), maxKeyringKeys)
		}
	}
	if err != nil {
		return keyMessage{}, fmt.Errorf("%s: %w", kind, err)
	}
	return m, nil
}

// handleKeyReq applies another node's key operation and answers it, off
// memberlist's receive path (saving the keyring syncs a file).
func (n *Node) handleKeyReq(r keyReq) {
	kr := n.keys
	if kr == nil {
		go n.replyKeys(r, keyResp{Error: errNotEncrypted.Error()})
		return
	}
	select {
	case kr.slots <- struct{}{}:
	default:
		n.metrics.error("keys")
		go n.replyKeys(r, keyResp{Error: "too many key requests at once"})
		return
	}
	go func() {
		defer func() { <-kr.slots }()
		var resp keyResp
		key, err := parseKeyOp(api.KeyOp{Op: r.Op, Key: r.Key})
		if err == nil {
			resp.Keys, err = kr.apply(r.Op, key)
		}
		if err != nil {
			resp.Error = err.Error()
			n.metrics.error("keys")
		}
		attrs := []any{"from", r.From, "op", r.Op}
		if key != nil {
			attrs = append(attrs, "key", api.KeyFingerprint(key))
		}
		switch {
		case err != nil:
			n.log.Warn("gossip keyring operation from another node refused", append(attrs, "err", err)...)
		case r.Op == api.KeyOpList:
			n.log.Debug("gossip keyring listed by another node", attrs...)
		default:
			n.log.Info("gossip keyring changed by another node", attrs...)
		}
		n.replyKeys(r, resp)
	}()
}

func (n *Node) replyKeys(r keyReq, resp keyResp) {
	resp.ID, resp.From = r.ID, n.cfg.NodeName
	n.sendAnswer(r.From, kindKeyResp, resp, "keys", "a key request")
}

// keyAnswer hands an answer to the Keys waiting for it.
func (n *Node) keyAnswer(r keyResp) {
	if kr := n.keys; kr == nil || !kr.wait.deliver(r.ID, r.From, r) {
		n.log.Debug("gossip: key answer for no pending request", "from", r.From, "id", r.ID)
	}
}
