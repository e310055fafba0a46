package segments

import (
	"fmt"
	"strconv"
	"strings"
)

// Set is a validated, compiled set of definitions that may refer to each
// other with in_segment: every reference resolves inside the set and the
// references are acyclic. It is immutable and safe for concurrent use.
type Set struct {
	known KnownNames
	list  []*Compiled // dependencies before their dependents
	index map[string]int
}

// NewSet validates and compiles definitions together. Besides each
// definition's own errors (Error.Definition names it), it reports duplicate
// names (ErrDuplicate), in_segment references to names outside the set
// (ErrUnknownSegment) and cycles (ErrCycle, at the in_segment that closes
// the cycle: "cycle: a -> b -> a").
func NewSet(known KnownNames, defs ...*Definition) (*Set, error) {
	var errs ErrorList
	parsed := make([]*Definition, len(defs))
	canons := make([][]byte, len(defs))
	for i, d := range defs {
		label := "#" + strconv.Itoa(i)
		if d == nil {
			errs = append(errs, &Error{Definition: label, Message: "nil definition", Err: ErrRequired})
			continue
		}
		if validName(d.Name) {
			label = d.Name
		}
		canon, _ := d.MarshalJSON()
		v, err := Parse(canon, ParseOptions{KnownNames: known})
		if err != nil {
			for _, e := range err.(ErrorList) {
				e.Definition = label
				errs = append(errs, e)
			}
			continue
		}
		parsed[i], canons[i] = v, canon
	}
	byName := map[string]int{}
	for i, d := range parsed {
		if d == nil {
			continue
		}
		if _, dup := byName[d.Name]; dup {
			errs = append(errs, &Error{Definition: d.Name, Path: "name", Message: "duplicate segment name " + quote(d.Name), Err: ErrDuplicate})
			continue
		}
		byName[d.Name] = i
	}
	if len(errs) > 0 {
		return nil, errs
	}

	// References, with their paths.
	refs := make([][]ref, len(parsed))
	for i, d := range parsed {
		refs[i] = compile(d, canons[i], nil).refs
		for _, r := range refs[i] {
			if _, ok := byName[r.name]; !ok {
				errs = append(errs, &Error{Definition: d.Name, Path: r.path, Message: "unknown segment " + quote(r.name), Err: ErrUnknownSegment})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	// Depth-first search: cycles and a dependencies-first order.
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(parsed))
	var stack []int
	var order []int
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, i)
		for _, r := range refs[i] {
			j := byName[r.name]
			switch color[j] {
			case white:
				visit(j)
			case grey:
				var names []string
				for k := len(stack) - 1; k >= 0; k-- {
					if stack[k] == j {
						for _, s := range stack[k:] {
							names = append(names, parsed[s].Name)
						}
						break
					}
				}
				names = append(names, parsed[j].Name)
				errs = append(errs, &Error{Definition: parsed[i].Name, Path: r.path, Message: "cycle: " + strings.Join(names, " -> "), Err: ErrCycle})
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		order = append(order, i)
	}
	for i := range parsed {
		if color[i] == white {
			visit(i)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	s := &Set{known: known, index: make(map[string]int, len(order))}
	for pos, i := range order {
		s.index[parsed[i].Name] = pos
	}
	for _, i := range order {
		c := compile(parsed[i], canons[i], s.index)
		for _, r := range c.refs {
			if s.list[s.index[r.name]].timeSensitive {
				c.timeSensitive = true
			}
		}
		s.list = append(s.list, c)
	}
	return s, nil
}

// Len is the number of definitions.
func (s *Set) Len() int { return len(s.list) }

// Names returns the names of the definitions, dependencies before their
// dependents.
func (s *Set) Names() []string {
	out := make([]string, len(s.list))
	for i, c := range s.list {
		out[i] = c.Name()
	}
	return out
}

// Get returns the compiled definition of that name, nil if none.
func (s *Set) Get(name string) *Compiled {
	if i, ok := s.index[name]; ok {
		return s.list[i]
	}
	return nil
}

// Local reports whether the named definition's membership is a function
// of the person alone: no top or bottom condition, directly or through
// in_segment. Such memberships can be updated for just the people whose
// data changed (RunLocal); the others move when anyone's values move, and
// only a Run over everyone decides them.
func (s *Set) Local(name string) bool {
	i, ok := s.index[name]
	return ok && s.local()[i]
}

func (s *Set) local() []bool {
	out := make([]bool, len(s.list))
	for i, c := range s.list {
		out[i] = len(c.metrics) == 0
		for _, r := range c.refs {
			// Dependencies come first: already decided.
			out[i] = out[i] && out[s.index[r.name]]
		}
	}
	return out
}

// NeedsProperties reports whether any definition of the set reads the
// properties or context of the named event (Compiled.NeedsProperties).
func (s *Set) NeedsProperties(event string) bool {
	for _, c := range s.list {
		if c.NeedsProperties(event) {
			return true
		}
	}
	return false
}

// NeedsContext reports whether any definition of the set reads the context
// of the named event (Compiled.NeedsContext).
func (s *Set) NeedsContext(event string) bool {
	for _, c := range s.list {
		if c.NeedsContext(event) {
			return true
		}
	}
	return false
}

// Subset returns the set of the named definitions and everything they
// refer to, directly or not.
func (s *Set) Subset(names ...string) (*Set, error) {
	need, err := s.closure(names...)
	if err != nil {
		return nil, err
	}
	var defs []*Definition
	for i, c := range s.list {
		if need[i] {
			defs = append(defs, c.def)
		}
	}
	return NewSet(s.known, defs...)
}

// closure marks the named definitions and their transitive references.
func (s *Set) closure(names ...string) ([]bool, error) {
	need := make([]bool, len(s.list))
	for _, n := range names {
		i, ok := s.index[n]
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNotInSet, quote(n))
		}
		need[i] = true
	}
	// Dependents come after their dependencies: one backward sweep.
	for i := len(s.list) - 1; i >= 0; i-- {
		if need[i] {
			for _, r := range s.list[i].refs {
				need[s.index[r.name]] = true
			}
		}
	}
	return need, nil
}
