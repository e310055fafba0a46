package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/demo"
)

// winbackDemo is the demo's campaign segment: buyers without an order in
// the 45 days before the send, a fifth of them held out.
const winbackDemo = `{"name": "winback", "purpose": "marketing.communications.email",
 "description": "Buyers with no order in 45 days; a fifth held out to measure the win-back email.",
 "where": {"all": [{"event": "Order Completed"}, {"not": {"event": "Order Completed", "within": "45d"}}]},
 "splits": {"treatment": 80, "holdout": 20}}`

// addDemoDestination gives a data directory the demo just initialised the
// file destination `make demo` configures (exports are plaintext, so they
// go next to the data directory, never inside it).
func addDemoDestination(c *cli.Context, cfg core.Config) error {
	if c.String("config") != "" {
		return nil
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(cfg.DataDir, core.ConfigFile), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "destinations:\n  newsletter: {kind: email, format: csv, dir: %q, fields: [email, first_name, consent_at]}\n", filepath.Clean(abs)+"-exports")
	return errors.Join(err, f.Close())
}

// demoCampaign plays a win-back campaign with a holdout on the demo data:
// the segment (with splits) is recorded as of 30 days ago and exported, the
// treated rows get the email, people order (demo.Respond: more of the
// treated than of the held out), and the segment report measures it.
func demoCampaign(c *cli.Context, b backend, cfg core.Config, opts demo.Options) error {
	w := c.App.Writer
	dest := ""
	for _, name := range slices.Sorted(maps.Keys(cfg.Destinations)) {
		if d := cfg.Destinations[name]; d.Kind == "email" && d.URL == "" && slices.Contains(d.Fields, "email") {
			dest = name
			break
		}
	}
	if dest == "" {
		fmt.Fprintln(w, "\n== campaign with a holdout: no file destination of kind email with the email field in custody.yaml; add one (docs/segments.md) to see it")
		return nil
	}
	sent := opts.Now.AddDate(0, 0, -30)
	fmt.Fprintf(w, "\n== a win-back campaign with a holdout, sent %s (custody segment apply winback.json; refresh; export)\n", sent.Format("2006-01-02"))
	if _, err := b.ApplySegmentData(c.Context, []byte(winbackDemo)); err != nil {
		return fmt.Errorf("demo campaign: %w", err)
	}
	// Memberships as they were on the day of the send.
	if err := refreshAll(c, b, sent); err != nil {
		return err
	}
	ex, err := b.ExportSegment(c.Context, "winback", dest, sent)
	if err != nil {
		return fmt.Errorf("demo campaign: %w", err)
	}
	rows, err := readExport(ex.Path)
	if err != nil {
		return fmt.Errorf("demo campaign: read %s: %w", ex.Path, err)
	}
	index := map[string]int{}
	for i := 0; i < opts.Customers; i++ {
		index[strings.ToLower(demo.Person(opts, i).Email)] = i
	}
	var rs []demo.Recipient
	groups := map[string]int{}
	for _, r := range rows {
		groups[r.split]++
		if i, ok := index[strings.ToLower(r.email)]; ok {
			rs = append(rs, demo.Recipient{Index: i, Holdout: r.split == "holdout"})
		}
	}
	fmt.Fprintf(w, "exported %d rows to %s with a split column: %s (only the treatment is emailed)\n", ex.Rows, ex.Path, formatCountMap(groups))

	pr, pw := io.Pipe()
	statsc := make(chan demo.CampaignStats, 1)
	go func() {
		st, err := demo.Respond(pw, opts, demo.Campaign{Sent: sent, Until: opts.Now, BaseRate: 0.06, Lift: 0.2}, rs)
		statsc <- st
		pw.CloseWithError(err)
	}()
	ir, err := b.Import(c.Context, pr, core.ImportOptions{BatchSize: 1000})
	_ = pr.Close()
	st := <-statsc
	if err != nil {
		return fmt.Errorf("demo campaign: %w", err)
	}
	fmt.Fprintf(w, "the 30 days after: %d orders by the %d treated (%d with the win-back coupon), %d by the %d held out; %d messages ingested\n",
		st.TreatedOrders, st.Treated, st.Responses, st.HeldOutOrders, st.HeldOut, ir.Accepted)

	// Memberships now; the report covers the send until this refresh.
	now := time.Now().UTC()
	if err := refreshAll(c, b, now); err != nil {
		return err
	}
	rep, err := b.SegmentReport(c.Context, "winback", sent, now)
	if err != nil {
		return fmt.Errorf("demo campaign: %w", err)
	}
	fmt.Fprintf(w, "\n== custody segment report winback --since %s\n", sent.Format("2006-01-02"))
	printSegmentReport(w, rep)
	return nil
}

func refreshAll(c *cli.Context, b backend, at time.Time) error {
	defs, err := b.Segments(c.Context)
	if err != nil {
		return err
	}
	for _, d := range defs {
		if _, err := b.RefreshSegment(c.Context, d.Name, at); err != nil {
			return fmt.Errorf("refresh %s: %w", d.Name, err)
		}
	}
	return nil
}

type exportRow struct{ email, split string }

// readExport reads the email and split of each row of a CSV or JSONL
// export.
func readExport(path string) ([]exportRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []exportRow
	if strings.HasSuffix(path, ".csv") {
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil || len(recs) == 0 {
			return nil, err
		}
		ei, si := slices.Index(recs[0], "email"), slices.Index(recs[0], "split")
		if ei < 0 || si < 0 {
			return nil, errors.New("no email or split column")
		}
		for _, r := range recs[1:] {
			out = append(out, exportRow{r[ei], r[si]})
		}
		return out, nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct{ Email, Split string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, err
		}
		out = append(out, exportRow{r.Email, r.Split})
	}
	return out, sc.Err()
}
