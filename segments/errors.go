package segments

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinels. Every *Error wraps exactly one of the definition sentinels, and
// every ErrorList matches ErrInvalid, so callers can test with errors.Is:
//
//	errors.Is(err, segments.ErrInvalid)      // any definition error
//	errors.Is(err, segments.ErrUnknownPurpose) // that particular problem
var (
	// ErrInvalid matches every ErrorList: the definition (or set of
	// definitions, or template parameters) is not valid.
	ErrInvalid = errors.New("segments: invalid definition")

	// ErrSyntax: the input is not JSON or YAML, is empty, too large
	// (MaxDefinitionBytes), nested too deep, has a duplicate key or a
	// number out of range.
	ErrSyntax = errors.New("segments: syntax error")
	// ErrType: a value has the wrong type ("expected number").
	ErrType = errors.New("segments: wrong type")
	// ErrRequired: a required field is missing.
	ErrRequired = errors.New("segments: missing field")
	// ErrUnknownField: a key that is not part of the language.
	ErrUnknownField = errors.New("segments: unknown field")
	// ErrUnknownOperator: a condition without any known operator key.
	ErrUnknownOperator = errors.New("segments: unknown operator")
	// ErrConflict: two operators, or two aggregates, in one object.
	ErrConflict = errors.New("segments: conflicting keys")
	// ErrInvalidValue: a value of the right type that is not allowed (a
	// malformed name or path, a percent outside (0, 100], an empty list).
	ErrInvalidValue = errors.New("segments: invalid value")
	// ErrInvalidDuration: a duration that is not <positive integer><m|h|d|w>
	// or is longer than MaxDuration; or an "after" that is neither a
	// duration nor an RFC 3339 time.
	ErrInvalidDuration = errors.New("segments: invalid duration")
	// ErrUnknownPurpose: the purpose is not in the caller's taxonomy.
	ErrUnknownPurpose = errors.New("segments: unknown purpose")
	// ErrUnknownComputed: a computed value the caller does not provide.
	ErrUnknownComputed = errors.New("segments: unknown computed value")
	// ErrUnknownSegment: in_segment names a segment missing from the set.
	ErrUnknownSegment = errors.New("segments: unknown segment")
	// ErrCycle: in_segment references form a cycle.
	ErrCycle = errors.New("segments: in_segment cycle")
	// ErrDuplicate: two definitions of a set share a name.
	ErrDuplicate = errors.New("segments: duplicate segment")
	// ErrInvalidParam: a template parameter is unknown or malformed.
	ErrInvalidParam = errors.New("segments: invalid template parameter")
)

// Sentinels of Run and Export.
var (
	// ErrNoGate: Run or Export was called without a Gate. There is no way
	// to members or rows without one.
	ErrNoGate = errors.New("segments: no gate")
	// ErrGate wraps an error returned by the Gate; the run is abandoned and
	// no partial result is returned (fail closed).
	ErrGate = errors.New("segments: gate failed")
	// ErrNotInSet: the named segment is not in the set.
	ErrNotInSet = errors.New("segments: segment not in set")
	// ErrNoFieldSource: an export row was allowed but the candidate's
	// Person does not implement FieldSource.
	ErrNoFieldSource = errors.New("segments: person has no field source")
	// ErrBadArgument: a nil set, nil people iterator or nil definition.
	ErrBadArgument = errors.New("segments: bad argument")
)

// Error is one problem of a definition, at an exact path such as
// where.all[1].count.gte. Messages quote input values only up to 40
// characters.
type Error struct {
	// Definition is the name of the definition the error belongs to; set
	// only by NewSet, where several definitions are checked together.
	Definition string
	// Path locates the problem: top-level fields by name (purpose), array
	// elements by index (all[1]), keys that are not identifiers quoted in
	// brackets (where["properties.total"]). Empty for the input as a whole.
	Path string
	// Message says what is wrong.
	Message string
	// Err is the sentinel (ErrType, ErrUnknownPurpose, ...).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Definition != "" {
		b.WriteString(e.Definition)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem found, in a deterministic order. It matches
// ErrInvalid and, through Unwrap, the sentinel of each element.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "segments: no errors"
	case 1:
		return l[0].Error()
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(l)))
	b.WriteString(" errors: ")
	for i, e := range l {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the elements.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// maxEcho is how many characters of an input value a message may quote.
const maxEcho = 40

// quote quotes s for a message, truncated to maxEcho characters.
func quote(s string) string {
	return strconv.Quote(clip(s))
}

// clip truncates s to maxEcho characters (runes), marking the cut with "…".
func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxEcho {
		return s
	}
	n := 0
	for i := range s {
		if n == maxEcho {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
