package policies_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/custody-cdp/custody/policies"
)

func ExampleEngine_Decide() {
	ctx := context.Background()
	gate, err := policies.New(ctx, policies.DefaultOptions())
	if err != nil {
		panic(err)
	}
	d, err := gate.Decide(ctx, policies.Input{
		Action:  policies.ActionSegmentExport,
		Purpose: "marketing.communications.email",
		Now:     time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC),
		Destination: policies.Destination{
			Name: "newsletter", Kind: policies.KindEmail, Region: "EU",
			Fields: []string{"email", "first_name", "email_sha256"},
		},
		Subject: policies.Subject{
			Jurisdiction: "EU",
			Consents: map[string]policies.Consent{
				"marketing": {Status: policies.StatusGranted, LawfulBasis: policies.BasisConsent},
			},
		},
		Requester: policies.Requester{Role: policies.RoleMarketer},
	})
	if err != nil {
		panic(err)
	}
	out, _ := json.MarshalIndent(d, "", "  ")
	fmt.Println(string(out))
	// Output:
	// {
	//   "allow": true,
	//   "reasons": [
	//     "EU: opt-in consent granted for marketing, which covers marketing.communications.email",
	//     "segment.export: email destinations get only email, first_name, last_name and consent_at; dropped email_sha256"
	//   ],
	//   "fields": [
	//     "email",
	//     "first_name"
	//   ]
	// }
}

func ExampleRunTests() {
	rep, err := policies.RunTests(context.Background(), "")
	if err != nil {
		panic(err)
	}
	fmt.Println(rep.Failed == 0 && rep.Passed > 0)
	// Output: true
}
