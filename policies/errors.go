package policies

import "errors"

var (
	// ErrInvalidInput is returned by Decide for an input that breaks the
	// contract: an unknown action, a malformed purpose, a consent record
	// with an unknown status or lawful basis, a negative age, a time
	// outside the range policies can compare.
	ErrInvalidInput = errors.New("policies: invalid input")
	// ErrNoPolicies is returned when a policy directory holds no .rego file.
	ErrNoPolicies = errors.New("policies: no policy files")
	// ErrPolicyCompile is returned when the policy bundle does not parse or
	// compile; the message names the file and line of each error.
	ErrPolicyCompile = errors.New("policies: policy does not compile")
	// ErrNoDecision is returned when the bundle defines no decision rule
	// (data.custody.gate.decision), or the rule is undefined for an input.
	ErrNoDecision = errors.New("policies: no decision")
	// ErrMalformedDecision is returned when the decision rule produces a
	// value that breaks the output contract: allow not a boolean, no
	// reason, fields on a denial or fields the destination did not declare.
	ErrMalformedDecision = errors.New("policies: malformed decision")
	// ErrPolicyEval is returned when evaluating the policy fails (a
	// conflict between rules, a cancelled context, ...).
	ErrPolicyEval = errors.New("policies: policy evaluation failed")
)
