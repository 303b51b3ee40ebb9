package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/api"
)

// keysTimeout bounds vipd keys: every node has 5 s to answer, in parallel.
const keysTimeout = 30 * time.Second

func newKeysCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys list|install|use|remove [KEY]",
		Short: "List or change the gossip encryption keys of the whole fleet",
		Long: `List or change the keys that encrypt gossip, on every node of the fleet at
once: the running vipd sends the operation by gossip to every other alive
node, applies it to itself, and prints one line per node with its answer.

  list         the keys each node holds, as fingerprints (never the keys
               themselves); * marks the primary key, the one gossip is
               encrypted with (the others only decrypt)
  install KEY  add KEY to every node's keyring
  use KEY      make KEY the primary key; a node that does not hold it fails
  remove KEY   drop KEY; a node whose primary key it is fails

KEY is the base64 of 16, 24 or 32 random bytes, as in --gossip-key-file;
--key-file FILE reads it from a file instead of the command line. A
fingerprint is sha256: and the first 16 hex digits of the SHA-256 of the raw
key; to see the one of a key: base64 -d <<<KEY | sha256sum | cut -c1-16

Rotating the key (from any node; OLD is the key in use):
  1. generate the new key:    NEW=$(head -c 32 /dev/urandom | base64)
  2. vipd keys install "$NEW"   every node can read the new key
  3. vipd keys use "$NEW"       every node encrypts with it
  4. vipd keys remove "$OLD"    the old key is gone
Every node of each step must answer ok before the next step. Fix a node that
failed or did not answer, then repeat the same step (harmless on the nodes
that did it already). Using a key before every node holds it, or removing a
key a node still encrypts with, cuts nodes out of the fleet. vipd keys list
shows where each node stands.

Each node saves its keyring next to its key file (FILE.keyring, mode 0600)
and loads it at start instead of the key file: a removed key stays removed
after restarts. A node that is down during a rotation, and any new node,
needs the new key: put it in its --gossip-key-file (and delete an old
FILE.keyring there) before starting it. After a rotation, write the new key
into the key files too, so that they agree with the saved keyrings.

vipd keys exits 1 when a node failed or did not answer (within 5 s), and
when the operation is refused before anything is sent: gossip off or not
encrypted, a malformed key, use of a key the local node does not hold, or
removal of its primary key.`,
		Example: `  # Which keys every node holds
  vipd keys list

  # Rotate the gossip key of the fleet, waiting for every node to say ok
  NEW=$(head -c 32 /dev/urandom | base64)
  vipd keys install "$NEW"
  vipd keys use "$NEW"
  vipd keys remove "$(cat /etc/vipd/gossip.key)"

  # The key from a file rather than the command line
  vipd keys install --key-file /root/gossip.key.new`,
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: []string{api.KeyOpList, api.KeyOpInstall, api.KeyOpUse, api.KeyOpRemove},
		RunE: func(cmd *cobra.Command, args []string) error {
			op := api.KeyOp{Op: args[0]}
			switch op.Op {
			case api.KeyOpList, api.KeyOpInstall, api.KeyOpUse, api.KeyOpRemove:
			default:
				return fail(exitUsage, "keys %q: want list, install, use or remove", op.Op)
			}
			keyFile := v.GetString("key-file")
			switch {
			case len(args) == 2 && keyFile != "":
				return fail(exitUsage, "keys %s: give KEY or --key-file, not both", op.Op)
			case len(args) == 2:
				op.Key = args[1]
			case keyFile != "":
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return fail(exitFailure, "keys %s: %v", op.Op, err)
				}
				op.Key = strings.TrimSpace(string(b))
			}
			switch {
			case op.Op == api.KeyOpList && op.Key != "":
				return fail(exitUsage, "keys list takes no KEY")
			case op.Op != api.KeyOpList && op.Key == "":
				return fail(exitUsage, "keys %s: KEY is required (the base64 of 16, 24 or 32 random bytes: head -c 32 /dev/urandom | base64)", op.Op)
			}
			socket := v.GetString("socket")
			ctx, cancel := context.WithTimeout(cmd.Context(), keysTimeout)
			defer cancel()
			res, err := api.NewClient(socket).Keys(ctx, op)
			if err != nil {
				return fail(exitFailure, "%v", err)
			}
			failed, err := renderKeys(env.stdout, op, res)
			if err != nil {
				return fail(exitFailure, "%v", err)
			}
			if failed > 0 {
				return fail(exitFailure, "keys %s: %s of %d failed or did not answer: fix them and repeat this command before going on",
					op.Op, plural(failed, "node"), len(res.Nodes))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.String("key-file", "", "read KEY from this file (base64, like --gossip-key-file) instead of the command line")
	addSocketFlag(fs)
	return cmd
}

// renderKeys writes one line per node with its answer (for list, its
// keys), then a summary line; it returns how many nodes failed.
func renderKeys(w io.Writer, op api.KeyOp, res api.KeysResult) (failed int, err error) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	switch {
	case len(res.Nodes) == 0:
		fmt.Fprintln(tw, "(no nodes)")
	case op.Op == api.KeyOpList:
		fmt.Fprintln(tw, "NODE\tANSWER\tKEYS (*primary)")
	default:
		fmt.Fprintln(tw, "NODE\tANSWER")
	}
	var rings []string // the keyrings of the nodes that answered, for list
	for _, n := range res.Nodes {
		if !n.OK {
			failed++
			fmt.Fprintf(tw, "%s\tFAILED\t%s\n", dash(n.Node), dash(n.Error))
			continue
		}
		if op.Op != api.KeyOpList {
			fmt.Fprintf(tw, "%s\tok\n", dash(n.Node))
			continue
		}
		ring := keyringCell(n.Keys)
		rings = append(rings, ring)
		fmt.Fprintf(tw, "%s\tok\t%s\n", dash(n.Node), ring)
	}
	if err := tw.Flush(); err != nil {
		return failed, err
	}

	what := "keys " + op.Op
	if op.Key != "" {
		if key, err := base64.StdEncoding.DecodeString(op.Key); err == nil {
			what += " " + api.KeyFingerprint(key)
		}
	}
	ok := len(res.Nodes) - failed
	switch {
	case failed > 0:
		_, err = fmt.Fprintf(w, "%s: %d of %d nodes ok\n", what, ok, len(res.Nodes))
	case op.Op == api.KeyOpList && len(slices.Compact(slices.Sorted(slices.Values(rings)))) > 1:
		_, err = fmt.Fprintf(w, "%s: %s answered; their keyrings differ\n", what, plural(ok, "node"))
	case op.Op == api.KeyOpList:
		_, err = fmt.Fprintf(w, "%s: %s answered, all with the same keyring\n", what, plural(ok, "node"))
	default:
		next := ""
		switch op.Op {
		case api.KeyOpInstall:
			next = "; next: vipd keys use KEY"
		case api.KeyOpUse:
			next = "; next: vipd keys remove OLD_KEY"
		}
		_, err = fmt.Fprintf(w, "%s: ok on every node (%d)%s\n", what, ok, next)
	}
	return failed, err
}

// keyringCell is a node's keys as one cell: fingerprints, the primary
// first and marked with *.
func keyringCell(keys []api.KeyInfo) string {
	if len(keys) == 0 {
		return "-"
	}
	var primary, others []string
	for _, k := range keys {
		if k.Primary {
			primary = append(primary, "*"+k.Fingerprint)
		} else {
			others = append(others, k.Fingerprint)
		}
	}
	return strings.Join(append(primary, others...), "  ")
}
