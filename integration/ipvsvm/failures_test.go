package ipvsvm

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The harness fails with the reason when the VM gives no result; these are
// Boot's errors, which Run turns into t.Fatalf.
func TestBootSaysWhyItHasNoResult(t *testing.T) {
	payload := Payload{Packages: []string{"./integration/ipvsvm/testdata/poweroff"}}
	tests := []struct {
		name  string
		setup func(t *testing.T, p *Payload)
		want  string
	}{
		{"no qemu", func(t *testing.T, p *Payload) { t.Setenv(EnvQemu, "/nonexistent/qemu-system-x86_64") },
			"/nonexistent/qemu-system-x86_64 not found"},
		{"no such kernel", func(t *testing.T, p *Payload) { t.Setenv(EnvKernel, "0.0.0-none") },
			"VIPD_IPVSVM_KERNEL=0.0.0-none: kernel image: open /boot/vmlinuz-0.0.0-none: no such file or directory"},
		{"bad timeout", func(t *testing.T, p *Payload) { t.Setenv(EnvTimeout, "soon") },
			`VIPD_IPVSVM_TIMEOUT="soon": want a positive Go duration`},
		{"boot timeout", func(t *testing.T, p *Payload) { p.Timeout = time.Second },
			"no result within 1s (the kernel never ran /init); set VIPD_IPVSVM_TIMEOUT for more"},
		{"kernel panic", func(t *testing.T, p *Payload) {
			old := kernelArgs
			kernelArgs += " rdinit=/nonexistent init=/nonexistent"
			t.Cleanup(func() { kernelArgs = old })
		}, "kernel panic: "},
		{"no result marker", func(t *testing.T, p *Payload) {}, // the payload powers the VM off
			"no result marker for github.com/vipd/vipd/integration/ipvsvm/testdata/poweroff (github.com/vipd/vipd/integration/ipvsvm/testdata/poweroff was running)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := payload
			tt.setup(t, &p)
			rep, err := Boot(context.Background(), p, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Boot: %v\nwant an error with %q", err, tt.want)
			}
			t.Logf("Boot: %v", err)
			if rep != nil && tt.name == "kernel panic" && !strings.Contains(rep.Console, "Kernel panic") {
				t.Errorf("console without the panic:\n%s", rep.Console)
			}
		})
	}
}
