package segments

import (
	"context"
	"fmt"

	"github.com/custody-cdp/custody/policies"
)

// MeasureResult counts the people Measure saw.
type MeasureResult struct {
	// Allowed people were handed to observe.
	Allowed int
	// Denied people were not: the gate refused the purpose. Only counted.
	Denied int
}

// Measure is how a report reads people: it asks the gate whether each
// person may be used for purpose (policies.ActionSegmentEvaluate, as Run
// asks before evaluating anyone) and hands only the allowed ones to
// observe. People the gate denies are counted and never passed on, so a
// report's figures (members versus non-members, conversion, revenue) are
// made of allowed people only, and say how many were left out. An error of
// the gate or of observe, or a cancelled ctx, abandons the pass.
func Measure(ctx context.Context, purpose string, people People, gate Gate, observe func(Candidate) error) (MeasureResult, error) {
	var res MeasureResult
	if gate == nil || isNilValue(gate) {
		return res, ErrNoGate
	}
	if people == nil || observe == nil {
		return res, fmt.Errorf("%w: nil people or observe", ErrBadArgument)
	}
	n := 0
	for c := range people {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}
		n++
		d, err := gate.Allow(ctx, &subjectHandle{ref: c.Ref, person: c.Person}, policies.ActionSegmentEvaluate, purpose, policies.Destination{})
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrGate, err)
		}
		if !d.Allow {
			res.Denied++
			continue
		}
		res.Allowed++
		if err := observe(c); err != nil {
			return res, err
		}
	}
	return res, nil
}
