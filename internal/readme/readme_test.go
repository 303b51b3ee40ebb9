package readme

import (
	"reflect"
	"testing"
)

const md = "# t\n\nRun `vipd status -o json` or `make\ndemo`; not `ls`.\n\n```sh\nvipd run --a 1 \\\n    --b 2   # two lines\n# a comment\n\nmake test\n```\n\n```\nvipd not-sh\n```\n`vipd last`\n"

func TestShellLines(t *testing.T) {
	got := ShellLines(md)
	want := []Line{{7, "vipd run --a 1 --b 2   # two lines"}, {11, "make test"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ShellLines = %+v, want %+v", got, want)
	}
}

func TestShellLinesKeepsALastLineThatGoesOn(t *testing.T) {
	got := ShellLines("```sh\nvipd run \\\n   --x 1 \\\n```\n")
	want := []Line{{2, "vipd run --x 1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ShellLines = %+v, want %+v", got, want)
	}
}

func TestSpans(t *testing.T) {
	got := Spans(md, "vipd", "make")
	want := []Line{{3, "vipd status -o json"}, {3, "make demo"}, {17, "vipd last"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Spans = %+v, want %+v", got, want)
	}
}

func TestWords(t *testing.T) {
	for _, c := range []struct {
		line string
		want []string
	}{
		{`vipd maint on --reason "kernel upgrade"        # every instance`, []string{"vipd", "maint", "on", "--reason", "kernel upgrade"}},
		{`vipd keys remove $(cat /etc/vipd/gossip.key)`, []string{"vipd", "keys", "remove", "SUBST"}},
		{`vipd status -o json | jq .`, []string{"vipd", "status", "-o", "json"}},
		{`vipd convert a.conf > b.yaml`, []string{"vipd", "convert", "a.conf"}},
		{`etcdctl put "/vipd/config/virtual_servers/10.0.0.100 80" x`, []string{"etcdctl", "put", "/vipd/config/virtual_servers/10.0.0.100 80", "x"}},
	} {
		if got := Words(c.line); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Words(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}
