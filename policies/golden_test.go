package policies

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/decisions.golden.json")

type goldenCase struct {
	Name     string   `json:"name"`
	Input    Input    `json:"input"`
	Decision Decision `json:"decision"`
}

// goldenInputs is a table of inputs across actions, jurisdictions and rules.
func goldenInputs() []goldenCase {
	type edit = func(in *Input)
	g := granted()
	at := func(c Consent, status, basis string) Consent { c.Status, c.LawfulBasis = status, basis; return c }
	mk := func(name string, edits ...edit) goldenCase {
		in := baseInput()
		for _, e := range edits {
			e(&in)
		}
		return goldenCase{Name: name, Input: in}
	}
	j := func(code string) edit { return func(in *Input) { in.Subject.Jurisdiction = code } }
	p := func(purpose string) edit { return func(in *Input) { in.Purpose = purpose } }
	cs := func(kv ...any) edit {
		return func(in *Input) {
			in.Subject.Consents = map[string]Consent{}
			for i := 0; i < len(kv); i += 2 {
				in.Subject.Consents[kv[i].(string)] = kv[i+1].(Consent)
			}
		}
	}
	export := func(kind string, fields ...string) edit {
		return func(in *Input) {
			in.Action = ActionSegmentExport
			in.Destination = Destination{Name: kind + "-destination", Kind: kind, Region: "EU", Fields: fields}
		}
	}
	read := func(role string) edit {
		return func(in *Input) {
			in.Action = ActionProfileRead
			in.Purpose = "personalize.content.profiled"
			in.Requester.Role = role
		}
	}
	gpc := func(in *Input) { in.Subject.GPC = true }
	restricted := func(in *Input) { in.Subject.Restricted = true }
	age := func(a int) edit { return func(in *Input) { in.Subject.Age = ptr(a) } }
	objects := func(o ...string) edit { return func(in *Input) { in.Subject.Objections = o } }
	expiredG := expiringAt(g, testNow().Add(-24*time.Hour))
	all := []string{"email", "first_name", "last_name", "consent_at", "phone", "email_sha256", "phone_sha256", "tier", "lifecycle_stage", "health", "user_id"}
	return []goldenCase{
		mk("eu-no-consent"),
		mk("eu-granted", cs("marketing.communications.email", g)),
		mk("eu-withdrawn", cs("marketing.communications.email", at(g, StatusWithdrawn, BasisConsent))),
		mk("eu-expired", cs("marketing.communications.email", expiredG)),
		mk("eu-parent-covers-child", cs("marketing", g)),
		mk("eu-child-denial-overrides-parent", cs("marketing", g, "marketing.communications.email", at(g, StatusDenied, BasisConsent))),
		mk("eu-contract-basis", cs("marketing", at(g, StatusGranted, BasisContract))),
		mk("eu-analytics-reporting-legitimate-interests", p("analytics.reporting"), cs("analytics.reporting", at(g, StatusGranted, BasisLegitimateInterests))),
		mk("eu-analytics-reporting-legitimate-interests-objected", p("analytics.reporting"), cs("analytics.reporting", at(g, StatusGranted, BasisLegitimateInterests)), objects("analytics")),
		mk("eu-essential", p("essential.service.security"), restricted),
		mk("eu-restricted", cs("marketing", g), restricted),
		mk("eu-objection", cs("marketing", g), objects("marketing")),
		mk("eu-gpc-third-party-sharing", p("third_party_sharing"), cs("third_party_sharing", g), gpc),
		mk("eu-sensitive-parent-grant", p("personalize.sensitive"), cs("personalize", g)),
		mk("eu-sensitive-own-grant", p("personalize.sensitive"), cs("personalize.sensitive", g)),
		mk("uk-no-consent", j("UK")),
		mk("uk-restricted", j("UK"), restricted),
		mk("ca-nothing", j("US-CA")),
		mk("ca-opted-out", j("US-CA"), cs("marketing", at(g, StatusDenied, ""))),
		mk("ca-gpc-third-party-sharing", j("US-CA"), p("third_party_sharing"), gpc),
		mk("ca-gpc-third-party-targeted", j("US-CA"), p("marketing.advertising.third_party.targeted"), gpc),
		mk("ca-gpc-email", j("US-CA"), gpc),
		mk("ca-age-15-sale", j("US-CA"), p("third_party_sharing"), age(15)),
		mk("ca-age-15-sale-granted", j("US-CA"), p("third_party_sharing"), age(15), cs("third_party_sharing", g)),
		mk("ca-age-12-sale", j("US-CA"), p("third_party_sharing"), age(12)),
		mk("ca-age-16-sale", j("US-CA"), p("third_party_sharing"), age(16)),
		mk("ca-sensitive", j("US-CA"), p("personalize.sensitive")),
		mk("ca-restricted", j("US-CA"), restricted),
		mk("ca-objection", j("US-CA"), objects("marketing")),
		mk("tx-nothing", j("US-TX")),
		mk("unknown-jurisdiction", j("BR")),
		mk("unknown-jurisdiction-granted", j("BR"), cs("marketing", g)),
		mk("no-jurisdiction", j("")),
		mk("unknown-purpose", j("US-CA"), p("marketing.communications.pigeon")),
		mk("read-dpo", read(RoleDPO), restricted),
		mk("read-admin", read(RoleAdmin)),
		mk("read-marketer", read(RoleMarketer)),
		mk("read-personalize-eu-none", read(RolePersonalize)),
		mk("read-personalize-eu-granted", read(RolePersonalize), cs("personalize.content.profiled", g)),
		mk("read-personalize-ca", read(RolePersonalize), j("US-CA")),
		mk("read-personalize-wrong-purpose", read(RolePersonalize), j("US-CA"), p("marketing")),
		mk("read-ingest", read("ingest")),
		mk("export-email", export(KindEmail, all...), cs("marketing", g)),
		mk("export-ads", export(KindAds, all...), p("marketing.advertising.first_party.targeted"), cs("marketing", g)),
		mk("export-ads-plaintext-only", export(KindAds, "email", "phone"), p("marketing.advertising.first_party.targeted"), cs("marketing", g)),
		mk("export-support", export(KindSupport, all...), p("essential.service.operations")),
		mk("export-analytics", export(KindAnalytics, all...), p("analytics"), cs("analytics", g)),
		mk("export-file", export(KindFile, all...), cs("marketing", g)),
		mk("export-webhook", export(KindWebhook, all...), j("US-CA")),
		mk("export-unknown-kind", export("crm", all...), j("US-CA")),
		mk("export-no-fields", export(KindFile), j("US-CA")),
		mk("export-denied", export(KindEmail, all...)),
	}
}

func TestGoldenDecisions(t *testing.T) {
	e := newEngine(t, Options{})
	cases := goldenInputs()
	for i := range cases {
		d, err := e.Decide(context.Background(), cases[i].Input)
		if err != nil {
			t.Fatalf("%s: %v", cases[i].Name, err)
		}
		cases[i].Decision = d
	}
	got, err := json.MarshalIndent(cases, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "decisions.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./policies -run TestGoldenDecisions -update)", err)
	}
	if !bytes.Equal(got, want) {
		var old []goldenCase
		_ = json.Unmarshal(want, &old)
		for i, c := range cases {
			if i >= len(old) || old[i].Name != c.Name {
				t.Errorf("case %d: %s is new or moved", i, c.Name)
				continue
			}
			a, _ := json.Marshal(old[i])
			b, _ := json.Marshal(c)
			if !bytes.Equal(a, b) {
				t.Errorf("%s:\n got %s\nwant %s", c.Name, b, a)
			}
		}
		t.Fatal("decisions differ from testdata/decisions.golden.json; if intended, rerun with -update")
	}
}
