package core

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/policies"
)

// BenchmarkGatedPass reads every person (traits and consent, decrypted)
// with and without asking the policy gate, over a store of
// CUSTODY_BENCH_PEOPLE people (default 20,000) in mixed jurisdictions and
// consent states. make bench prints people/s for both and the ratio.
func BenchmarkGatedPass(b *testing.B) {
	people := 20000
	if v, err := strconv.Atoi(os.Getenv("CUSTODY_BENCH_PEOPLE")); err == nil && v > 0 {
		people = v
	}
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	ctx := context.Background()
	if err := Init(ctx, cfg, Options{}); err != nil {
		b.Fatal(err)
	}
	c, err := Open(ctx, cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rng := rand.New(rand.NewSource(3))
	countries := []string{`"DE"`, `"FR"`, `"GB"`, `"US","state":"CA"`, `"US","state":"NY"`, `"JP"`}
	var batch []event.Message
	for i := 0; i < people; i++ {
		prefs := ""
		switch rng.Intn(4) {
		case 0:
			prefs = `,"context":{"consent":{"categoryPreferences":{"email":true,"analytics":true}}}`
		case 1:
			prefs = `,"context":{"consent":{"categoryPreferences":{"email":false,"advertising":false}}}`
		}
		body := fmt.Sprintf(`{"type":"identify","messageId":"p%d","userId":"u%d","traits":{"email":"p%d@example.com","address":{"country":%s}}%s,"timestamp":"2026-10-01T00:00:00Z"}`,
			i, i, i, countries[rng.Intn(len(countries))], prefs)
		m, err := event.DecodeMessage([]byte(body), "", fixedNow)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, m)
		if len(batch) == 1000 || i == people-1 {
			if _, err := c.Ingest(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = nil
		}
	}
	pass := func(gated bool) (allowed int) {
		err := c.eachPerson(ctx, func(tx *store.Txn, root uuid.UUID, members []uuid.UUID) error {
			traits, err := c.traitsOf(ctx, tx, members)
			if err != nil {
				return err
			}
			cv, err := c.consentOf(ctx, tx, root, members, traits)
			if err != nil {
				return err
			}
			if !gated {
				allowed++
				return nil
			}
			d, err := c.engine.Decide(ctx, c.subjectInput(GateRequest{Action: policies.ActionSegmentEvaluate,
				Purpose: "marketing.communications.email", Role: policies.RoleMarketer}, cv))
			if d.Allow {
				allowed++
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		return allowed
	}
	// A first pass warms the page and block caches, so neither measured
	// pass pays for reading the store cold.
	pass(false)
	for _, mode := range []string{"ungated", "gated"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				pass(mode == "gated")
			}
			b.ReportMetric(float64(people*b.N)/b.Elapsed().Seconds(), "people/s")
		})
	}
}
