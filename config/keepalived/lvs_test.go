package keepalived

import (
	"strings"
	"testing"

	"github.com/vipd/vipd/config"
)

func TestParseLVSCheckersAndWeights(t *testing.T) {
	src := `virtual_server 10.0.0.1 53 {
    protocol UDP
    ha_suspend
    real_server 10.0.0.2 53 {
        weight 0
        DNS_CHECK {
            type aaaa
            name www.example.com
            connect_timeout 2
        }
    }
    real_server 10.0.0.3 25 {
        SMTP_CHECK {
            helo_name lb.example.com
        }
    }
    real_server 10.0.0.4 53 {
        DNS_CHECK {
        }
    }
}
`
	m, ds := Parse("k.conf", []byte(src), memFS{}.options())
	if err := ds.Err(); err != nil {
		t.Fatal(err)
	}
	config.Normalize(m)
	if ds := config.Validate(m, config.ValidateOptions{}); ds.Err() != nil {
		t.Fatal(ds.Err())
	}
	vs := m.VirtualServers[0]
	if !vs.HASuspend {
		t.Error("ha_suspend not read")
	}
	rs := vs.RealServers
	if rs[0].Weight == nil || *rs[0].Weight != 0 {
		t.Errorf("weight 0 read as %v: it is a real weight, not the default", rs[0].Weight)
	}
	if w := rs[1].Weight; w == nil || *w != 1 {
		t.Errorf("no weight: %v, want the default 1", w)
	}
	dns := rs[0].Checkers[0]
	if dns.Type != config.CheckDNS || dns.DNSType != "AAAA" || dns.DNSName != "www.example.com" || dns.ConnectPort != 53 || dns.Retry == nil || *dns.Retry != config.DefaultDNSRetry {
		t.Errorf("DNS_CHECK: %+v", dns)
	}
	if d := rs[2].Checkers[0]; d.DNSType != "SOA" || d.DNSName != "." {
		t.Errorf("DNS_CHECK defaults: type %q name %q, want SOA and . (check/check_dns.c)", d.DNSType, d.DNSName)
	}
	if s := rs[1].Checkers[0]; s.Type != config.CheckSMTP || s.HeloName != "lb.example.com" || s.ConnectPort != 25 {
		t.Errorf("SMTP_CHECK: %+v", s)
	}

	bad := strings.Replace(src, "weight 0", "weight 65536", 1)
	bad = strings.Replace(bad, "type aaaa", "type SRV", 1)
	m, ds = Parse("k.conf", []byte(bad), memFS{}.options())
	config.Normalize(m)
	ds = append(ds, config.Validate(m, config.ValidateOptions{})...)
	got := ds.Err()
	if got == nil || !strings.Contains(got.Error(), "k.conf:5:") || !strings.Contains(got.Error(), "k.conf:7:") {
		t.Errorf("errors for weight 65536 and type SRV: %v, want both with FILE:LINE", got)
	}
}
