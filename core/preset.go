package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/segments"
)

// Channel presets: destinations for the usual activation targets, each with
// the minimal fields the target needs and the purpose the data is used for
// there. A preset is configured like any destination, as a file (format,
// dir) or a webhook (url, secret_env), with `preset: NAME`; the keys kind,
// purpose and fields may be left out (the preset's apply) or narrow it,
// never widen it. On export every person must be allowed the segment's
// purpose (segment.evaluate, then segment.export) and the preset's purpose
// (segment.export to the destination), so the gate decides per person for
// the channel too; the row carries only the preset's fields that the
// policy lets the destination's kind receive. docs/activation.md has the
// table.

// Preset is a destination preset.
type Preset struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Kind        string   `json:"kind"`
	Purpose     string   `json:"purpose"`
	Fields      []string `json:"fields"`
	// Phone says how phone_sha256 is normalised before hashing.
	Phone PhoneHashing `json:"phone_hashing,omitempty"`
}

// PhoneHashing is how a phone number is written before SHA-256.
type PhoneHashing string

const (
	// PhoneE164 hashes the E.164 form with its "+" (+4915112345678), as
	// Google Customer Match specifies.
	PhoneE164 PhoneHashing = "e164"
	// PhoneDigits hashes the E.164 digits without "+" (4915112345678):
	// Meta's rule (country code, no symbols, no leading zeros).
	PhoneDigits PhoneHashing = "e164_digits"
)

// Presets returns the built-in channel presets. Email addresses are hashed
// as identity normalises them for matching (trimmed, lower-cased, nothing
// else: no removal of dots or +tags, which neither platform asks for
// Customer Match uploads).
func Presets() []Preset {
	return []Preset{
		{Name: "email_list_sync", Kind: policies.KindEmail, Purpose: "marketing.communications.email",
			Fields:      []string{"email", "first_name", "consent_at"},
			Description: "email platform list sync: address, first name and when the governing consent was given"},
		{Name: "google_customer_match", Kind: policies.KindAds, Purpose: "marketing.advertising.third_party.targeted",
			Fields: []string{"email_sha256", "phone_sha256"}, Phone: PhoneE164,
			Description: "Google Ads Customer Match: SHA-256 of the trimmed, lower-cased email and of the E.164 phone with +"},
		{Name: "meta_custom_audience", Kind: policies.KindAds, Purpose: "marketing.advertising.third_party.targeted",
			Fields: []string{"email_sha256", "phone_sha256"}, Phone: PhoneDigits,
			Description: "Meta custom audience (customer list): SHA-256 of the trimmed, lower-cased email and of the E.164 phone digits without +"},
		{Name: "support_tool", Kind: policies.KindSupport, Purpose: "essential.service.operations",
			Fields:      []string{"email", "tier", "lifecycle_stage"},
			Description: "support tool: tier and lifecycle stage, keyed by the email the tool knows the customer by"},
	}
}

// PresetByName returns the named preset.
func PresetByName(name string) (Preset, bool) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

func presetNames() string {
	var ns []string
	for _, p := range Presets() {
		ns = append(ns, p.Name)
	}
	return strings.Join(ns, ", ")
}

// Resolve returns the destination with its preset applied: kind, purpose
// and fields from the preset where the configuration leaves them out, and a
// file format of csv when neither a format nor a URL is given. A
// configuration may narrow a preset (fewer fields, a more specific
// purpose), never widen it; the error says what is wrong. Without a
// preset, d is returned as it is.
func (d DestinationConfig) Resolve() (DestinationConfig, error) {
	if d.Preset == "" {
		return d, nil
	}
	p, ok := PresetByName(d.Preset)
	if !ok {
		return d, fmt.Errorf("unknown preset %q (known: %s)", d.Preset, presetNames())
	}
	switch d.Kind {
	case "":
		d.Kind = p.Kind
	case p.Kind:
	default:
		return d, fmt.Errorf("preset %s is a destination of kind %s, not %s", p.Name, p.Kind, d.Kind)
	}
	switch {
	case d.Purpose == "":
		d.Purpose = p.Purpose
	case d.Purpose != p.Purpose && !strings.HasPrefix(d.Purpose, p.Purpose+"."):
		return d, fmt.Errorf("preset %s is used for %s; purpose may only name it or a purpose under it, not %s", p.Name, p.Purpose, d.Purpose)
	}
	if len(d.Fields) == 0 {
		d.Fields = slices.Clone(p.Fields)
	}
	for _, f := range d.Fields {
		if !slices.Contains(p.Fields, f) {
			return d, fmt.Errorf("preset %s sends only %s; field %q is not one of them", p.Name, strings.Join(p.Fields, ", "), f)
		}
	}
	if d.URL == "" && d.Format == "" {
		d.Format = "csv"
	}
	return d, nil
}

// purposeShaped reports whether p looks like a purpose key (dot-separated
// [a-z0-9_] segments). Whether the taxonomy knows it is checked against the
// policy bundle when the destination is used.
func purposeShaped(p string) bool {
	if p == "" {
		return false
	}
	for seg := range strings.SplitSeq(p, ".") {
		if seg == "" || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			return false
		}
	}
	return true
}

// destination resolves a configured destination for an export and checks
// its purpose against the loaded taxonomy.
func (c *CDP) destination(name string, dc DestinationConfig) (DestinationConfig, error) {
	dc, err := dc.Resolve()
	if err != nil {
		return dc, fmt.Errorf("%w: destination %s: %w", ErrInvalidInput, name, err)
	}
	if dc.Purpose != "" && !c.engine.ValidPurpose(dc.Purpose) {
		return dc, fmt.Errorf("%w: destination %s: purpose %q is not in the purpose taxonomy", ErrInvalidInput, name, dc.Purpose)
	}
	// Checked before anything is read or recorded: an export that cannot
	// sign its batches must not get as far as the ledger.
	if dc.URL != "" && os.Getenv(dc.SecretEnv) == "" {
		return dc, fmt.Errorf("%w: destination %s: environment variable %s (its signing secret) is empty", ErrInvalidInput, name, dc.SecretEnv)
	}
	return dc, nil
}

// exportVia adapts an export's people and gate to its (resolved)
// destination: a destination purpose is asked of the gate for every person
// as well as the segment's, and the rows' fields are formatted as the
// destination's preset says (hashing rules, the governing consent's time).
func (c *CDP) exportVia(dc DestinationConfig, people segments.People, g segments.Gate) (segments.People, segments.Gate) {
	if dc.Purpose == "" && dc.Preset == "" {
		return people, g
	}
	p, _ := PresetByName(dc.Preset)
	if dc.Purpose != "" {
		g = purposeGate{inner: g, purpose: dc.Purpose}
	}
	wrapped := func(yield func(segments.Candidate) bool) {
		for cand := range people {
			if pv, ok := cand.Person.(*personView); ok {
				cand.Person = &destPerson{personView: pv, purpose: dc.Purpose, phone: p.Phone}
			}
			if !yield(cand) {
				return
			}
		}
	}
	return wrapped, g
}

// purposeGate asks its inner gate, for an export, about the destination's
// purpose too: a person goes to the destination only if both are allowed,
// with the fields both decisions allow.
type purposeGate struct {
	inner   segments.Gate
	purpose string
}

func (g purposeGate) Allow(ctx context.Context, s segments.Subject, action, purpose string, dest policies.Destination) (policies.Decision, error) {
	d, err := g.inner.Allow(ctx, s, action, purpose, dest)
	if err != nil || !d.Allow || action != policies.ActionSegmentExport || purpose == g.purpose {
		return d, err
	}
	dd, err := g.inner.Allow(ctx, s, action, g.purpose, dest)
	if err != nil || !dd.Allow {
		return dd, err
	}
	d.Reasons = append(slices.Clone(d.Reasons), dd.Reasons...)
	d.Fields = slices.DeleteFunc(slices.Clone(d.Fields), func(f string) bool { return !slices.Contains(dd.Fields, f) })
	return d, nil
}

// destPerson is a person on their way to a destination: fields are
// written as the destination needs them; everything else is the person.
type destPerson struct {
	*personView
	purpose string
	phone   PhoneHashing
}

// asPersonView returns the person behind a candidate of a run or export.
func asPersonView(p segments.Person) (*personView, bool) {
	switch v := p.(type) {
	case *personView:
		return v, true
	case *destPerson:
		return v.personView, true
	}
	return nil, false
}

// Field gives the destination's form of a field.
func (d *destPerson) Field(name string) (any, bool) {
	switch name {
	case "email":
		// Recipients match on the address: no stray whitespace.
		if v, ok := d.Trait("email"); ok {
			if s, _ := v.(string); strings.TrimSpace(s) != "" {
				return strings.TrimSpace(s), true
			}
		}
		return nil, false
	case "phone_sha256":
		if d.phone != PhoneDigits {
			break
		}
		s, _ := d.Trait("phone")
		ph, _ := s.(string)
		if e := identity.NormalizePhone(ph, d.c.rules.DefaultRegion); e != "" {
			sum := sha256.Sum256([]byte(strings.TrimPrefix(e, "+")))
			return hex.EncodeToString(sum[:]), true
		}
		return nil, false
	case "consent_at":
		if d.purpose == "" {
			break
		}
		// The record that governs the destination's purpose: its own, else
		// the nearest ancestor's (a grant for marketing covers email).
		cv, err := d.consent()
		if err != nil {
			return nil, false
		}
		for p := d.purpose; p != ""; p = parentPurpose(p) {
			if st, ok := cv.States[p]; ok {
				return st.Record.CollectedAt.UTC().Format(time.RFC3339), true
			}
		}
		return nil, false
	}
	return d.personView.Field(name)
}

func parentPurpose(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}
