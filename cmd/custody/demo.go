package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/demo"
	"github.com/custody-cdp/custody/identity"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "generate a realistic ecommerce store's events, ingest them, and show what Custody did",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "customers", Value: 3000, Usage: "customers to generate"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "random seed (same seed, same data)"},
			&cli.IntFlag{Name: "days", Value: 120, Usage: "days of history"},
		},
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	w := c.App.Writer
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	b, _, err := openBackend(c)
	if errors.Is(err, core.ErrNotInitialised) {
		fmt.Fprintf(w, "== initialising %s\n", cfg.DataDir)
		if err := core.Init(c.Context, cfg, core.Options{Logger: newLogger(cfg, c.App.ErrWriter)}); err != nil {
			return err
		}
		if err := addDemoDestination(c, cfg); err != nil {
			return err
		}
		b, cfg, err = openBackend(c)
	}
	if err != nil {
		return err
	}
	defer b.Close()

	opts := demo.DefaultOptions()
	opts.Seed, opts.Customers, opts.Days = c.Int64("seed"), c.Int("customers"), c.Int("days")
	opts.Now = time.Now().UTC().Truncate(time.Second)
	fmt.Fprintf(w, "== generating %d customers over %d days (seed %d) and ingesting them\n", opts.Customers, opts.Days, opts.Seed)

	pr, pw := io.Pipe()
	statsc := make(chan demo.Stats, 1)
	go func() {
		st, err := demo.Generate(c.Context, pw, opts)
		statsc <- st
		pw.CloseWithError(err)
	}()
	start := time.Now()
	in, done := withProgress(c, pr, -1, "ingesting")
	rep, err := b.Import(c.Context, in, core.ImportOptions{BatchSize: 1000})
	done()
	_ = pr.Close()
	st := <-statsc
	if err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Fprintf(w, "generated %d messages: %d orders (%d with a coupon), %d refunds, %d anonymous-only visitors\n",
		st.Messages, st.Orders, st.CouponOrders, st.Refunds, st.AnonymousVisitors)
	fmt.Fprintf(w, "by region: %s\n", formatCounts(st.ByRegion))
	fmt.Fprintf(w, "by type:   %s\n", formatCounts(st.ByType))
	fmt.Fprintf(w, "ingested %d messages (%d duplicates, %d rejected) in %s — %.0f msgs/s, each durable, sealed under its profile's own key\n",
		rep.Accepted, rep.Duplicates, rep.Rejected, d.Round(time.Millisecond), float64(rep.Accepted)/max(d.Seconds(), 1e-9))

	stats, err := b.Stats(c.Context)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== identity: %d identifiers became %d people: %d known customers (%d anonymous devices stitched to them), %d anonymous-only visitors\n",
		stats.Profiles, stats.People, stats.KnownPeople, stats.DevicesStitched, stats.AnonymousPeople)
	fmt.Fprintf(w, "%d merges made, %d refused by the merge rules (e.g. a shared device signed into by two users)\n",
		rep.Merges, stats.MergesRefused)

	if err := demoConsent(c, b, opts); err != nil {
		return err
	}

	if err := demoSegments(c, b, opts.Now); err != nil {
		return err
	}
	if err := demoExport(c, b, cfg, opts.Now); err != nil {
		return err
	}
	if err := demoCampaign(c, b, cfg, opts); err != nil {
		return err
	}

	p := demo.Person(opts, 0)
	fmt.Fprintf(w, "\n== one customer, decrypted on demand (custody profile show --user-id %s)\n", p.UserID)
	view, err := b.Profile(c.Context, identity.Identifier{Type: identity.UserID, Value: p.UserID}, core.ShowOptions{EventLimit: 8})
	if err != nil {
		return fmt.Errorf("show demo customer: %w", err)
	}
	printProfile(w, view)

	fmt.Fprintf(w, "\n== privacy check: searching every file under %s for this customer's email and name as raw bytes\n", cfg.DataDir)
	files, size, hits, err := scanFor(cfg.DataDir, [][]byte{[]byte(p.Email), []byte(p.FirstName + " " + p.LastName), []byte(p.LastName)})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d files, %.1f MiB scanned: %d plaintext occurrences\n", files, float64(size)/(1<<20), hits)

	if err := demoPrivacy(c, b, p, cfg.DataDir); err != nil {
		return err
	}

	ver, err := b.AuditVerify(c.Context)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== audit log: %d hash-chained entries (consent recorded, decisions with the policy bundle hash), verified: %v\n", ver.Entries, ver.OK)

	k, err := b.CreateAPIKey(c.Context, core.RoleIngest, "demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== next: run `custody --data %s serve` and point a Segment SDK at http://%s with write key %s\n",
		cfg.DataDir, cfg.Server.Addr, k.Key)
	return nil
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

// scanFor counts raw occurrences of needles in every regular file under dir.
func scanFor(dir string, needles [][]byte) (files int, size int64, hits int, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		size += int64(len(b))
		for _, n := range needles {
			if len(n) > 0 {
				hits += bytes.Count(b, n)
			}
		}
		return nil
	})
	return files, size, hits, err
}

// demoConsent records consent as a preference centre and browsers would:
// email opt-ins for some customers, SMS for fewer, and Global Privacy
// Control opt-outs from some US browsers; then shows how many people each
// purpose may reach through the policy gate.
func demoConsent(c *cli.Context, b backend, opts demo.Options) error {
	w := c.App.Writer
	rng := rand.New(rand.NewSource(opts.Seed))
	n := min(opts.Customers, 400)
	recorded := 0
	for i := 0; i < n; i++ {
		p := demo.Person(opts, i)
		id := identity.Identifier{Type: identity.Email, Value: p.Email}
		at := opts.Now.Add(-time.Duration(rng.Intn(90*24)) * time.Hour)
		var reqs []core.ConsentRequest
		switch r := rng.Intn(10); {
		case r < 5:
			reqs = append(reqs, core.ConsentRequest{Purpose: "marketing.communications.email", Status: "granted", Notice: "preference-centre/v3"})
		case r < 7:
			reqs = append(reqs, core.ConsentRequest{Purpose: "marketing.communications.email", Status: "denied", Notice: "preference-centre/v3"})
		}
		if rng.Intn(6) == 0 {
			reqs = append(reqs, core.ConsentRequest{Purpose: "marketing.communications.sms", Status: "granted", Notice: "checkout-sms/v1"})
		}
		if strings.HasPrefix(p.Region, "US") && rng.Intn(4) == 0 {
			for _, purpose := range []string{"third_party_sharing", "marketing.advertising.third_party.targeted"} {
				reqs = append(reqs, core.ConsentRequest{Purpose: purpose, Status: "denied", Source: "gpc", Notice: "Sec-GPC: 1"})
			}
		}
		for _, r := range reqs {
			r.Identifier, r.CollectedAt = id, at
			if r.Source == "" {
				r.Source = "api"
			}
			if _, err := b.RecordConsent(c.Context, r); err != nil {
				return fmt.Errorf("demo consent: %w", err)
			}
			recorded++
		}
	}
	fmt.Fprintf(w, "\n== consent: %d records from the preference centre and GPC signals for %d customers, plus the cookie banner choices that arrived on events\n", recorded, n)
	purposes := []string{"analytics", "marketing.communications.email", "marketing.communications.sms",
		"marketing.advertising.third_party.targeted", "personalize.content.profiled", "third_party_sharing"}
	reps, err := b.Reach(c.Context, purposes)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-45s %9s %14s   allowed by jurisdiction\n", "purpose", "may reach", "not consented")
	for _, r := range reps {
		fmt.Fprintf(w, "%-45s %9d %14d   %s\n", r.Purpose, r.Allowed, r.NotConsented, formatCounts(r.ByJurisdiction))
	}
	return nil
}

// demoSegments applies the templates brands start with and evaluates them
// through the gate: the marketer's main job.
func demoSegments(c *cli.Context, b backend, now time.Time) error {
	w := c.App.Writer
	fmt.Fprintf(w, "\n== segments (templates, evaluated through the consent gate as of %s)\n", now.Format(time.RFC3339))
	fmt.Fprintf(w, "%-26s %-32s %8s %14s\n", "segment", "purpose", "members", "not consented")
	for _, t := range []string{"first_time_buyers", "repeat_buyers", "vip", "cart_abandoners", "discount_only_buyers", "at_risk", "champions"} {
		if _, err := b.ApplyTemplate(c.Context, t, nil); err != nil {
			return fmt.Errorf("demo segment %s: %w", t, err)
		}
		ev, err := b.EvaluateSegment(c.Context, t, now)
		if err != nil {
			return fmt.Errorf("demo segment %s: %w", t, err)
		}
		fmt.Fprintf(w, "%-26s %-32s %8d %14d\n", t, ev.Purpose, ev.Allowed, ev.NotConsented)
	}
	return nil
}

// demoExport exports one segment to the configured email destination
// (make demo configures one): only consented members, only the fields the
// destination may receive.
func demoExport(c *cli.Context, b backend, cfg core.Config, now time.Time) error {
	w := c.App.Writer
	var dest string
	for _, name := range slices.Sorted(maps.Keys(cfg.Destinations)) {
		if d := cfg.Destinations[name]; d.Kind == "email" && d.URL == "" {
			dest = name
			break
		}
	}
	if dest == "" {
		fmt.Fprintln(w, "\n== export: no file destination of kind email in custody.yaml; add one (docs/segments.md) to see an export")
		return nil
	}
	const seg = "repeat_buyers"
	rep, err := b.ExportSegment(c.Context, seg, dest, now)
	if err != nil {
		return fmt.Errorf("demo export: %w", err)
	}
	fmt.Fprintf(w, "\n== export: custody segment export %s --destination %s\n", seg, dest)
	fmt.Fprintf(w, "%d rows written to %s\n", rep.Rows, rep.Path)
	fmt.Fprintf(w, "fields: %s (nothing else leaves Custody)\n", strings.Join(rep.Fields, ", "))
	fmt.Fprintf(w, "left out: %d not consented to %s, %d not allowed to reach this destination\n", rep.NotConsented, rep.Purpose, rep.ExportDenied)
	fmt.Fprintf(w, "export %s is in the ledger: access reports list it, deletion certificates name it\n", rep.ID)
	return nil
}

// demoPrivacy answers an access request and a deletion request for one
// demo customer, and shows that the person is gone and stays gone.
func demoPrivacy(c *cli.Context, b backend, p demo.Persona, dataDir string) error {
	w := c.App.Writer
	id := identity.Identifier{Type: identity.Email, Value: p.Email}
	_, rep, err := b.HandleRequest(c.Context, core.RequestAccess, "gdpr", id)
	if err != nil {
		return fmt.Errorf("demo access: %w", err)
	}
	// The report is the person's data, decrypted: it goes next to the data
	// directory (never inside it), readable by its owner only.
	path := filepath.Join(filepath.Dir(filepath.Clean(dataDir)), "custody-demo-access-report.json")
	body, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== access request (GDPR Art. 15) for %s: %d identifiers, %d events, %d consent records, %d exports -> %s\n",
		p.Email, len(rep.Person.Identifiers), rep.Person.EventCount, len(rep.Person.Consent.History), len(rep.Exports), path)
	req, _, err := b.HandleRequest(c.Context, core.RequestSuppressWithDelete, "gdpr", id)
	if err != nil {
		return fmt.Errorf("demo deletion: %w", err)
	}
	var cert core.DeletionCertificate
	if err := json.Unmarshal(req.Result, &cert); err != nil {
		return err
	}
	fmt.Fprintf(w, "== deletion request (GDPR Art. 17) %s: person %s, %d profiles erased (%v), %d data keys shredded, KEK epochs retired %v, %d identifiers suppressed\n",
		req.ID, cert.Person, len(cert.Profiles), cert.Records, len(cert.DEKsShredded), cert.KEKRetired, len(cert.Suppressed))
	certJSON, err := json.MarshalIndent(cert, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "deletion certificate (on the audit log; no personal data):\n%s\n", certJSON)
	// An access request for a deleted person completes with an empty
	// report, the same as for someone never seen (docs/privacy.md).
	if _, after, err := b.HandleRequest(c.Context, core.RequestAccess, "gdpr", id); err == nil && after != nil && after.Person == nil {
		fmt.Fprintf(w, "proof: an access request for %s now finds no one (an empty report); the certificate is on the audit log\n", p.Email)
	} else {
		return fmt.Errorf("demo deletion: the person is still there (%v)", err)
	}
	replay := fmt.Sprintf(`{"type":"track","messageId":"demo-replay-%d","userId":%q,"event":"Product Viewed"}`, time.Now().UnixNano(), p.UserID)
	ir, err := b.Import(c.Context, strings.NewReader(replay), core.ImportOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "proof: a late event for their user id was suppressed (%d suppressed, %d stored)\n", ir.Suppressed, ir.Accepted)
	return nil
}
