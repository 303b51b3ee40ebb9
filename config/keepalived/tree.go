package keepalived

import (
	"strings"

	"github.com/vipd/vipd/config"
)

// node is one statement with the block that follows it, if any.
type node struct {
	pos      config.Pos
	words    []word
	hasBlock bool
	children []*node
}

// kw returns the keyword (first word) of the node.
func (n *node) kw() string {
	if len(n.words) == 0 {
		return ""
	}
	return n.words[0].text
}

// args returns the words after the keyword.
func (n *node) args() []word {
	if len(n.words) < 2 {
		return nil
	}
	return n.words[1:]
}

// line renders the statement as written, for messages.
func (n *node) line() string {
	parts := make([]string, len(n.words))
	for i, w := range n.words {
		parts[i] = w.raw
	}
	return strings.Join(parts, " ")
}

// buildTree nests statements into blocks. A '{' opens a block for the
// statement just before it; unbalanced braces are errors at the line of the
// extra '}' or of the statement whose block is never closed.
func buildTree(stmts []stmt, diags *config.Diagnostics) []*node {
	root := &node{hasBlock: true}
	stack := []*node{root}
	var prev *node // the statement just before, if it can take a block
	for _, st := range stmts {
		top := stack[len(stack)-1]
		switch st.brace {
		case '{':
			if prev == nil {
				diags.Errorf(st.pos, "unexpected '{'")
				prev = &node{pos: st.pos}
				top.children = append(top.children, prev)
			}
			prev.hasBlock = true
			stack = append(stack, prev)
			prev = nil
		case '}':
			prev = nil
			if len(stack) == 1 {
				diags.Errorf(st.pos, "unexpected '}' (no block open)")
				continue
			}
			stack = stack[:len(stack)-1]
		default:
			n := &node{pos: st.pos, words: st.words}
			top.children = append(top.children, n)
			prev = n
		}
	}
	for i := len(stack) - 1; i >= 1; i-- {
		n := stack[i]
		what := "block"
		if k := n.kw(); k != "" {
			what = k + " block"
		}
		diags.Errorf(n.pos, "%s is never closed (missing '}')", what)
	}
	return root.children
}
