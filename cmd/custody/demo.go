package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
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
		b, _, err = openBackend(c)
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
