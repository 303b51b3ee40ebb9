package gossip

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/vipd/vipd/api"
)

// The wire format of vipd's own gossip messages (memberlist user messages
// and push/pull state). Every message is a 3-byte header and a JSON body:
//
//	byte 0  wireVersion (1)
//	byte 1  kind: state, state request, maintenance request or answer, bundle,
//	        keyring request or answer
//	byte 2  encoding: 0 plain JSON, 1 gzip of the JSON
//
// Bodies over compressAbove bytes are gzipped. Decoding never trusts the
// input: an unknown version, kind or encoding, bad gzip, a body that
// decompresses beyond maxBody, bad JSON or a message that fails its
// validation is an error, never a panic (FuzzDecodeMessage).

const (
	wireVersion = 1

	encPlain byte = 0
	encGzip  byte = 1

	// compressAbove: bodies larger than this are gzipped.
	compressAbove = 1024
	// maxBody bounds a decoded body (memberlist itself refuses user
	// messages and push/pull states above 20 MiB on the wire).
	maxBody = 32 << 20
	// maxNameLen bounds node and instance names in a message.
	maxNameLen = 256
)

// msgKind is what a message carries.
type msgKind byte

const (
	kindState     msgKind = 1 // stateMsg: one node's full state
	kindStateReq  msgKind = 2 // stateReq: "send me your state"
	kindMaintReq  msgKind = 3 // maintReq: a maintenance request for the receiver
	kindMaintResp msgKind = 4 // maintResp: the answer to a maintReq
	kindBundle    msgKind = 5 // bundle: push/pull state, the sender's and what it knows of others
	// The keyring kinds are decoded and handled in keys.go
	// (decodeKeyMessage, receiveKeys), never by decodeMessage.
	kindKeyReq  msgKind = 6 // keyReq: a keyring operation for the receiver
	kindKeyResp msgKind = 7 // keyResp: the answer to a keyReq
)

func (k msgKind) String() string {
	switch k {
	case kindState:
		return "state"
	case kindStateReq:
		return "state_request"
	case kindMaintReq:
		return "maint_request"
	case kindMaintResp:
		return "maint_answer"
	case kindBundle:
		return "bundle"
	case kindKeyReq:
		return "key_request"
	case kindKeyResp:
		return "key_answer"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// stateMsg is one node's share of the fleet view with its version: the
// receiver keeps the newest (Epoch, Seq) per node.
type stateMsg struct {
	Node  string    `json:"node"`
	Epoch int64     `json:"epoch"` // the sender's run start, ns since the Unix epoch
	Seq   uint64    `json:"seq"`   // increases with every change within one run
	State NodeState `json:"state"`
	// Leaving: the node is leaving the cluster on purpose (its last
	// message before memberlist's leave, which by itself does not tell a
	// node that left from one that died).
	Leaving bool `json:"leaving,omitempty"`
}

// newer reports whether m is more recent than (epoch, seq).
func (m *stateMsg) newer(epoch int64, seq uint64) bool {
	return m.Epoch > epoch || (m.Epoch == epoch && m.Seq > seq)
}

// stateReq asks the receiver for its state (sent when a node's metadata
// announces a state newer than the one held).
type stateReq struct {
	From string `json:"from"`
}

// maintReq carries an operator's maintenance request to the node it is
// for.
type maintReq struct {
	ID   uint64           `json:"id"`
	From string           `json:"from"`
	Req  api.MaintRequest `json:"req"`
}

// maintResp answers a maintReq: Error is "" when it was applied.
type maintResp struct {
	ID    uint64 `json:"id"`
	From  string `json:"from"`
	Error string `json:"error,omitempty"`
}

// bundle is the push/pull state: the sender's own state first, then what
// it knows of other nodes.
type bundle struct {
	From   string     `json:"from"`
	States []stateMsg `json:"states"`
}

// message is one decoded message: Kind says which field is set.
type message struct {
	Kind      msgKind
	State     *stateMsg
	StateReq  *stateReq
	MaintReq  *maintReq
	MaintResp *maintResp
	Bundle    *bundle
}

// encodeMessage encodes body (one of the message types) as kind.
func encodeMessage(kind msgKind, body any) ([]byte, error) {
	js, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	if len(js) <= compressAbove {
		out := make([]byte, 0, 3+len(js))
		out = append(out, wireVersion, byte(kind), encPlain)
		return append(out, js...), nil
	}
	var buf bytes.Buffer
	buf.Write([]byte{wireVersion, byte(kind), encGzip})
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(js); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var errEmpty = errors.New("empty message")

// decodeMessage decodes and validates a message received from the
// network.
func decodeMessage(b []byte) (message, error) {
	if len(b) == 0 {
		return message{}, errEmpty
	}
	if len(b) < 3 {
		return message{}, fmt.Errorf("message of %d bytes: too short", len(b))
	}
	if b[0] != wireVersion {
		return message{}, fmt.Errorf("wire version %d: want %d", b[0], wireVersion)
	}
	kind := msgKind(b[1])
	body, err := decodeBody(b[2], b[3:])
	if err != nil {
		return message{}, fmt.Errorf("%s: %w", kind, err)
	}
	m := message{Kind: kind}
	switch kind {
	case kindState:
		m.State = new(stateMsg)
		err = unmarshal(body, m.State)
		if err == nil {
			err = m.State.validate()
		}
	case kindStateReq:
		m.StateReq = new(stateReq)
		err = unmarshal(body, m.StateReq)
		if err == nil {
			err = validName("from", m.StateReq.From)
		}
	case kindMaintReq:
		m.MaintReq = new(maintReq)
		err = unmarshal(body, m.MaintReq)
		if err == nil {
			err = validName("from", m.MaintReq.From)
		}
		if err == nil && len(m.MaintReq.Req.Instance) > maxNameLen {
			err = fmt.Errorf("instance name of %d bytes: too long", len(m.MaintReq.Req.Instance))
		}
	case kindMaintResp:
		m.MaintResp = new(maintResp)
		err = unmarshal(body, m.MaintResp)
		if err == nil {
			err = validName("from", m.MaintResp.From)
		}
	case kindBundle:
		m.Bundle = new(bundle)
		err = unmarshal(body, m.Bundle)
		if err == nil {
			err = validName("from", m.Bundle.From)
		}
		if err == nil {
			for i := range m.Bundle.States {
				if err = m.Bundle.States[i].validate(); err != nil {
					err = fmt.Errorf("state %d: %w", i, err)
					break
				}
			}
		}
	default:
		return message{}, fmt.Errorf("unknown message kind %d", byte(kind))
	}
	if err != nil {
		return message{}, fmt.Errorf("%s: %w", kind, err)
	}
	return m, nil
}

// decodeBody undoes the body's encoding, bounded by maxBody.
func decodeBody(enc byte, b []byte) ([]byte, error) {
	switch enc {
	case encPlain:
		if len(b) > maxBody {
			return nil, fmt.Errorf("body of %d bytes: over the limit of %d", len(b), maxBody)
		}
		return b, nil
	case encGzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxBody+1))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if len(out) > maxBody {
			return nil, fmt.Errorf("body decompresses beyond the limit of %d bytes", maxBody)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown encoding %d", enc)
}

func unmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	return nil
}

func validName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s: empty node name", what)
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("%s: node name of %d bytes: too long", what, len(s))
	}
	return nil
}

func (m *stateMsg) validate() error {
	if err := validName("node", m.Node); err != nil {
		return err
	}
	if m.Epoch <= 0 {
		return fmt.Errorf("node %s: epoch %d: must be positive", m.Node, m.Epoch)
	}
	for i, in := range m.State.Instances {
		if len(in.Name) > maxNameLen {
			return fmt.Errorf("node %s: instance %d: name of %d bytes: too long", m.Node, i, len(in.Name))
		}
	}
	return nil
}

// nodeMeta is the memberlist node metadata (<= 512 bytes): small, so
// every alive message carries it; it announces the sequence of the node's
// latest state so a receiver that missed it asks for it.
type nodeMeta struct {
	Version   string `json:"v,omitempty"`
	Instances int    `json:"n"`
	Epoch     int64  `json:"e"`
	Seq       uint64 `json:"s"`
}

// maxMetaVersion bounds the version string in the metadata so it always
// fits memberlist's 512 bytes.
const maxMetaVersion = 64

func encodeMeta(m nodeMeta) []byte {
	if len(m.Version) > maxMetaVersion {
		m.Version = m.Version[:maxMetaVersion]
	}
	b, _ := json.Marshal(m) // plain struct: cannot fail
	return b
}

func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) == 0 {
		return m, errEmpty
	}
	if len(b) > 512 {
		return m, fmt.Errorf("metadata of %d bytes: over 512", len(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nodeMeta{}, fmt.Errorf("metadata: %w", err)
	}
	return m, nil
}
