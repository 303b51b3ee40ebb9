package gossip

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/api"
)

func TestMessagesRoundTrip(t *testing.T) {
	var big []api.FleetInstance
	for i := range 500 {
		big = append(big, fi(fmt.Sprintf("VI_%d", i), i%255+1, "BACKUP", "10.0.0.2"))
	}
	for _, tc := range []struct {
		name string
		kind msgKind
		body any
		want message
	}{
		{"small state, plain", kindState, &stateMsg{Node: "n1", Epoch: 1, Seq: 2, State: NodeState{Version: "1", Instances: big[:1]}},
			message{Kind: kindState, State: &stateMsg{Node: "n1", Epoch: 1, Seq: 2, State: NodeState{Version: "1", Instances: big[:1]}}}},
		{"large state, gzipped", kindState, &stateMsg{Node: "n1", Epoch: 1, Seq: 3, State: NodeState{Instances: big}, Leaving: true},
			message{Kind: kindState, State: &stateMsg{Node: "n1", Epoch: 1, Seq: 3, State: NodeState{Instances: big}, Leaving: true}}},
		{"state request", kindStateReq, stateReq{From: "n2"}, message{Kind: kindStateReq, StateReq: &stateReq{From: "n2"}}},
		{"maintenance request", kindMaintReq, maintReq{ID: 7, From: "n2", Req: api.MaintRequest{On: true, Instance: "VI_1", Reason: "r", Node: "n1"}},
			message{Kind: kindMaintReq, MaintReq: &maintReq{ID: 7, From: "n2", Req: api.MaintRequest{On: true, Instance: "VI_1", Reason: "r", Node: "n1"}}}},
		{"maintenance answer", kindMaintResp, maintResp{ID: 7, From: "n1", Error: "no"}, message{Kind: kindMaintResp, MaintResp: &maintResp{ID: 7, From: "n1", Error: "no"}}},
		{"bundle", kindBundle, bundle{From: "n1", States: []stateMsg{{Node: "n1", Epoch: 5, Seq: 1}, {Node: "n2", Epoch: 4, Seq: 9}}},
			message{Kind: kindBundle, Bundle: &bundle{From: "n1", States: []stateMsg{{Node: "n1", Epoch: 5, Seq: 1}, {Node: "n2", Epoch: 4, Seq: 9}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeMessage(tc.kind, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if wantGzip := strings.Contains(tc.name, "gzip"); (b[2] == encGzip) != wantGzip {
				t.Errorf("encoding byte %d, gzip wanted: %v", b[2], wantGzip)
			}
			got, err := decodeMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("decoded (-want +got):\n%s", d)
			}
		})
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestDecodeRejectsWhatItCannotTrust(t *testing.T) {
	bomb := append([]byte{wireVersion, byte(kindState), encGzip}, gz(bytes.Repeat([]byte(" "), maxBody+10))...)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"short", []byte{1, 1}, "too short"},
		{"other version", []byte{2, 1, 0, '{', '}'}, "wire version 2"},
		{"unknown kind", []byte{1, 99, 0, '{', '}'}, "unknown message kind 99"},
		{"unknown encoding", []byte{1, 1, 7, '{', '}'}, "unknown encoding 7"},
		{"bad gzip", []byte{1, 1, 1, 'x'}, "gzip"},
		{"gzip bomb", bomb, "beyond the limit"},
		{"bad json", []byte("\x01\x01\x00{"), "json"},
		{"state without node", []byte("\x01\x01\x00{\"epoch\":1}"), "empty node name"},
		{"state without epoch", []byte("\x01\x01\x00{\"node\":\"n\"}"), "epoch 0"},
		{"wrong types", []byte("\x01\x01\x00{\"node\":1}"), "json"},
		{"maintenance request without sender", []byte("\x01\x03\x00{\"id\":1}"), "empty node name"},
		{"bundle with a bad state", []byte("\x01\x05\x00{\"from\":\"n\",\"states\":[{\"node\":\"\"}]}"), "state 0"},
		{"long name", []byte("\x01\x02\x00{\"from\":\"" + strings.Repeat("x", 300) + "\"}"), "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeMessage(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestMetaFitsAndRoundTrips(t *testing.T) {
	m := nodeMeta{Version: strings.Repeat("\"", 500), Instances: 4000, Epoch: 1 << 62, Seq: 1 << 63}
	b := encodeMeta(m)
	if len(b) > 512 {
		t.Fatalf("metadata of %d bytes, over 512", len(b))
	}
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	m.Version = m.Version[:maxMetaVersion]
	if got != m {
		t.Errorf("decoded %+v, want %+v", got, m)
	}
}

// FuzzDecodeMessage: whatever arrives from the network, decoding returns
// a valid message or an error, never panics; a decoded message encodes
// and decodes to itself.
func FuzzDecodeMessage(f *testing.F) {
	for _, body := range []struct {
		kind msgKind
		v    any
	}{
		{kindState, &stateMsg{Node: "n1", Epoch: 1, Seq: 1, State: NodeState{Version: "1", Instances: []api.FleetInstance{fi("VI_1", 51, "MASTER", "10.0.0.1")}}}},
		{kindMaintReq, maintReq{ID: 1, From: "n2", Req: api.MaintRequest{On: true}}},
	} {
		b, err := encodeMessage(body.kind, body.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		var body any
		switch m.Kind {
		case kindState:
			body = m.State
		case kindStateReq:
			body = m.StateReq
		case kindMaintReq:
			body = m.MaintReq
		case kindMaintResp:
			body = m.MaintResp
		case kindBundle:
			body = m.Bundle
		default:
			t.Fatalf("decoded kind %d", m.Kind)
		}
		again, err := encodeMessage(m.Kind, body)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", m, err)
		}
		m2, err := decodeMessage(again)
		if err != nil {
			t.Fatalf("decoding the re-encoded message: %v", err)
		}
		// JSON drops empty collections (omitempty): nil and empty are one.
		if d := cmp.Diff(m, m2, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

// FuzzDecodeMeta: node metadata from the network never panics the
// decoder.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(nodeMeta{Version: "1.0.0", Instances: 3, Epoch: 1, Seq: 2}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if len(encodeMeta(m)) > 512 {
			t.Fatalf("re-encoded metadata over 512 bytes: %+v", m)
		}
	})
}
