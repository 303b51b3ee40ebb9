package keepalived

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/config"
)

func TestDecomment(t *testing.T) {
	tests := []struct {
		in, want     string
		cont, unterm bool
	}{
		{in: "  priority 100   # comment", want: "priority 100"},
		{in: "priority 100 ! comment", want: "priority 100"},
		{in: `script "/bin/a # not a comment" # comment`, want: `script "/bin/a # not a comment"`},
		{in: `label a\#b\!c`, want: `label a#b!c`},
		{in: `$X=a \`, want: `$X=a\`, cont: true},
		{in: `router_id "abc`, want: `router_id "abc`, unterm: true},
		{in: "# only a comment", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, cont, unterm := decomment(tt.in)
			if got != tt.want || cont != tt.cont || unterm != tt.unterm {
				t.Errorf("decomment(%q) = %q, %v, %v; want %q, %v, %v", tt.in, got, cont, unterm, tt.want, tt.cont, tt.unterm)
			}
		})
	}
}

func TestSplitLineMakesBracesStatementsOfTheirOwn(t *testing.T) {
	render := func(ss []stmt) []string {
		var out []string
		for _, s := range ss {
			if s.brace != 0 {
				out = append(out, string(s.brace))
				continue
			}
			out = append(out, strings.Join(texts(s.words), "|"))
		}
		return out
	}
	tests := []struct {
		in   string
		want []string
	}{
		{"authentication { auth_type PASS auth_pass 1111 }", []string{"authentication", "{", "auth_type|PASS|auth_pass|1111", "}"}},
		{"vrrp_instance VI_1 {", []string{"vrrp_instance|VI_1", "{"}},
		{"}}", []string{"}", "}"}},
		{`notify "/bin/x { y }" root`, []string{"notify|/bin/x { y }|root"}},
		{"a{b}c", []string{"a", "{", "b", "}", "c"}},
		{`x "" y`, []string{"x||y"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, unmatched := splitLine(config.Pos{}, tt.in)
			if unmatched {
				t.Errorf("unexpected unmatched quote")
			}
			if diff := cmp.Diff(tt.want, render(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSeconds(t *testing.T) {
	tests := []struct {
		in      string
		want    config.Duration
		wantErr bool
	}{
		{in: "1", want: secs(1)},
		{in: "0.1", want: secs(0.1)},
		{in: ".5", want: secs(0.5)},
		{in: "2.", want: secs(2)},
		{in: "0.000001", want: config.Duration(1000)},
		{in: "0.0000001", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "1e3", wantErr: true},
		{in: ".", wantErr: true},
		{in: "", wantErr: true},
		{in: "9999999999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSeconds(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseSeconds(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestCStrtoul: C strtoul as keepalived uses it for table, scope, protocol,
// realm and TOS numbers.
func TestCStrtoul(t *testing.T) {
	for _, tt := range []struct {
		in   string
		base int
		v    uint64
		n    int
		ok   bool
	}{
		{"16", 0, 16, 2, true},
		{"0x10", 0, 16, 4, true},
		{"010", 0, 8, 3, true},
		{"0x", 0, 0, 1, true},
		{"-1", 0, 1<<64 - 1, 2, true},
		{"99999999999999999999999", 0, 1<<64 - 1, 23, true},
		{"0x10", 10, 0, 1, true},
		{"x", 0, 0, 0, false},
		{"", 10, 0, 0, false},
	} {
		v, n, ok := cStrtoul(tt.in, tt.base)
		if v != tt.v || n != tt.n || ok != tt.ok {
			t.Errorf("cStrtoul(%q, %d) = %d, %d, %v; want %d, %d, %v", tt.in, tt.base, v, n, ok, tt.v, tt.n, tt.ok)
		}
	}
}
