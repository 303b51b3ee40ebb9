package script

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSplitsPlainCommandsKeepalivedStyle(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want []string
	}{
		{"single word", "/usr/local/bin/check", []string{"/usr/local/bin/check"}},
		{"blanks separate words", " /usr/bin/test\t!  -f /etc/down ", []string{"/usr/bin/test", "!", "-f", "/etc/down"}},
		{"double quotes group", `/bin/notify.sh "node one" master`, []string{"/bin/notify.sh", "node one", "master"}},
		{"single quotes group", `/bin/notify.sh 'node one' master`, []string{"/bin/notify.sh", "node one", "master"}},
		{"quote mid-word joins", `/bin/x --name="a b"c`, []string{"/bin/x", "--name=a bc"}},
		{"other quote is literal inside", `/bin/x "it's" '"q"'`, []string{"/bin/x", "it's", `"q"`}},
		{"empty quoted word kept", `/bin/x "" b`, []string{"/bin/x", "", "b"}},
		{"escaped blank joins", `/bin/x a\ b`, []string{"/bin/x", "a b"}},
		{"escapes inside quotes", `/bin/x "a\"b" 'c\'d'`, []string{"/bin/x", `a"b`, "c'd"}},
		{"C escapes", `/bin/x \t \x41 \101 \cA \E`, []string{"/bin/x", "\t", "A", "A", "\x01", "\x1b"}},
		{"escaped metacharacter stays plain", `/bin/x a\|b \;`, []string{"/bin/x", "a|b", ";"}},
		{"metacharacters inside quotes stay plain", `/bin/x "a|b" 'c;d' "e>f" 'g$(h)'`, []string{"/bin/x", "a|b", "c;d", "e>f", "g$(h)"}},
		{"bare name", "true", []string{"true"}},
		{"test builtin with executable", "test -f /etc/down", []string{"test", "-f", "/etc/down"}},
		{"equals after the command is plain", "/bin/x a=b", []string{"/bin/x", "a=b"}},
		{"tilde mid-word is plain", "/bin/x a~b", []string{"/bin/x", "a~b"}},
		{"hash mid-word is plain", "/bin/x a#b", []string{"/bin/x", "a#b"}},
		{"dollar without name is plain", "/bin/x 5$ $", []string{"/bin/x", "5$", "$"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.raw)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.raw, err)
			}
			if c.Shell {
				t.Errorf("Parse(%q).Shell = true, want exec", tt.raw)
			}
			if diff := cmp.Diff(tt.want, c.Argv); diff != "" {
				t.Errorf("Parse(%q).Argv (-want +got):\n%s", tt.raw, diff)
			}
			if c.Raw != tt.raw {
				t.Errorf("Raw = %q, want %q", c.Raw, tt.raw)
			}
		})
	}
}

func TestParseRunsShellSyntaxUnderAShell(t *testing.T) {
	tests := []struct{ name, raw string }{
		{"keepalived tutorial check", "[[ -f /etc/keepalived/down ]] && exit 1 || exit 0"},
		{"and", "/bin/true && /bin/false"},
		{"or", "/bin/false || /bin/true"},
		{"pipe", "ps -e | grep -q haproxy"},
		{"semicolon", "/bin/true; exit 3"},
		{"background", "/bin/sleep 1 &"},
		{"redirect out", "/bin/echo x > /tmp/f"},
		{"redirect stderr", "/usr/bin/curl -fs http://x 2>/dev/null"},
		{"redirect in (keepalived file test)", "</dev/tcp/127.0.0.1/80"},
		{"command substitution", "/bin/test $(cat /run/x) = 1"},
		{"backticks", "/bin/test `cat /run/x` = 1"},
		{"variable", "/bin/echo $HOME"},
		{"braced variable", "/bin/echo ${HOME}"},
		{"expansion inside double quotes", `/bin/echo "$HOME"`},
		{"backtick inside double quotes", "/bin/echo \"`id`\""},
		{"glob star", "/bin/ls /etc/*.conf"},
		{"glob question", "/bin/ls /etc/host?"},
		{"glob bracket", "/bin/ls /dev/sd[ab]"},
		{"single bracket test", "[ -f /etc/down ]"},
		{"negation", "! /usr/bin/test -f /etc/down"},
		{"env assignment", "LC_ALL=C /usr/bin/check"},
		{"subshell", "(cd /tmp)"},
		{"shell builtin exit", "exit 0"},
		{"shell keyword if", "if true; then exit 0; fi"},
		{"tilde", "~/bin/check"},
		{"newline", "/bin/true\n/bin/false"},
		{"comment word", "/bin/true #comment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.raw)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.raw, err)
			}
			if !c.Shell {
				t.Fatalf("Parse(%q).Shell = false (argv %q), want shell", tt.raw, c.Argv)
			}
			if diff := cmp.Diff([]string{ShellPath(), "-c", tt.raw}, c.Argv); diff != "" {
				t.Errorf("Argv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRejectsBadCommands(t *testing.T) {
	tests := []struct{ name, raw, wantErr string }{
		{"empty", "", "empty command"},
		{"blanks only", " \t ", "empty command"},
		{"unterminated double quote", `/bin/x "a b`, `missing terminating "`},
		{"unterminated single quote", `/bin/x 'a b`, `missing terminating '`},
		{"trailing backslash", `/bin/x a\`, "backslash at end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.raw)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.raw, err, tt.wantErr)
			}
		})
	}
}

func TestDescribeSaysHowTheCommandRuns(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"/usr/bin/test ! -f /etc/down", "exec /usr/bin/test ! -f /etc/down"},
		{`/bin/notify.sh "node one"`, "exec /bin/notify.sh 'node one'"},
		{"[[ -f x ]] && exit 1 || exit 0", ShellPath() + " -c '[[ -f x ]] && exit 1 || exit 0'"},
		{`/bin/echo "it's" | cat`, ShellPath() + ` -c '/bin/echo "it'\''s" | cat'`},
		{"no-such-command-vipd-test", "exec no-such-command-vipd-test (not found in PATH)"},
	}
	for _, tt := range tests {
		c, err := Parse(tt.raw)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.raw, err)
		}
		if got := c.Describe(); got != tt.want {
			t.Errorf("Describe(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	if got := (Command{}).Describe(); got != "(empty command)" {
		t.Errorf("zero Command Describe = %q", got)
	}
}

func TestDescribeResolvesBareNamesThroughPath(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	c, err := Parse("true")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Describe()
	if got != "exec /usr/bin/true" && got != "exec /bin/true" {
		t.Errorf("Describe(true) = %q, want exec with the path found", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "/bin/x 'a", `a\`, `\x`, `\x4`, `\c`, `"\`, "[[ x ]]", "a=b c", `$`, "\\777"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := Parse(raw)
		if err != nil {
			return
		}
		if len(c.Argv) == 0 {
			t.Fatalf("Parse(%q) accepted with empty argv", raw)
		}
		_ = c.Describe()
	})
}
