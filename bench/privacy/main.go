// Command privacy benchmarks privacy requests (DESIGN §7, issue "Privacy
// requests"): in a store of P profiles and E events it times an access
// request and a deletion for a person with 1,000 events, the deletion's KEK
// rotation separately, and PostgreSQL 15 doing the equivalent SELECTs and
// DELETEs on the same data volume in the same run. bench/privacy.sh starts
// PostgreSQL on loopback and runs it; nothing is asserted, figures are
// printed (and written as JSON with -out).
//
// Custody's store is built through the real ingest path (identify with
// userId, email and traits, then track events, sealed per profile). The
// PostgreSQL schema is what a brand would otherwise use: profiles,
// identifiers (type, value) -> profile, events (profile_id, ts, payload
// jsonb) indexed by (profile_id, ts), consents; loaded with generate_series.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/identity"
)

type result struct {
	Profiles     int     `json:"profiles"`
	Events       int     `json:"events"`
	TargetEvents int     `json:"target_events"`
	Rounds       int     `json:"rounds"`
	LoadSeconds  float64 `json:"custody_load_s"`
	// Custody, median over rounds, milliseconds.
	Access        float64 `json:"custody_access_ms"`
	Delete        float64 `json:"custody_delete_ms"` // whole request minus the rotation
	DeleteErase   float64 `json:"custody_delete_erase_ms"`
	DeleteShred   float64 `json:"custody_delete_shred_ms"`
	DeleteCertify float64 `json:"custody_delete_certify_ms"`
	Rotate        float64 `json:"custody_rotate_ms"`
	// PostgreSQL, median over rounds, milliseconds.
	PGLoadSeconds float64 `json:"pg_load_s,omitempty"`
	PGAccess      float64 `json:"pg_access_ms,omitempty"`
	PGDelete      float64 `json:"pg_delete_ms,omitempty"`
	PGVersion     string  `json:"pg_version,omitempty"`
}

func main() {
	profiles := flag.Int("profiles", envInt("PROFILES", 20000), "profiles in the store (env PROFILES)")
	events := flag.Int("events", envInt("EVENTS", 200000), "events in the store (env EVENTS)")
	target := flag.Int("target-events", envInt("TARGET_EVENTS", 1000), "events of the person accessed and deleted")
	rounds := flag.Int("rounds", envInt("ROUNDS", 5), "people accessed and deleted (median reported; one more first, as a warm-up, not counted)")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed)")
	pgURL := flag.String("pg", "", "PostgreSQL URL (empty: Custody only)")
	out := flag.String("out", "", "write the figures as JSON here")
	flag.Parse()
	ctx := context.Background()
	if *dir == "" {
		d, err := os.MkdirTemp("", "custody-privacy-bench-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	res := result{Profiles: *profiles, Events: *events, TargetEvents: *target, Rounds: *rounds}
	if err := benchCustody(ctx, filepath.Join(*dir, "custody"), &res); err != nil {
		log.Fatalf("custody: %v", err)
	}
	if *pgURL != "" {
		if err := benchPG(ctx, *pgURL, &res); err != nil {
			log.Fatalf("postgres: %v", err)
		}
	}
	fmt.Printf("\nPrivacy requests: %d profiles, %d events; a person with %d events; median of %d rounds\n",
		res.Profiles, res.Events, res.TargetEvents, res.Rounds)
	fmt.Printf("  %-46s %10s %10s\n", "", "Custody", "PostgreSQL")
	fmt.Printf("  %-46s %10.1f %10s\n", "load (s)", res.LoadSeconds, pgf(res.PGLoadSeconds, res.PGVersion))
	fmt.Printf("  %-46s %10.1f %10s   (target < 100 ms)\n", "access: everything about the person (ms)", res.Access, pgf(res.PGAccess, res.PGVersion))
	fmt.Printf("  %-46s %10.1f %10s   (target < 50 ms)\n", "delete, without the KEK rotation (ms)", res.Delete, pgf(res.PGDelete, res.PGVersion))
	fmt.Printf("  %-46s %10.1f\n", "  of which erase transaction (ms)", res.DeleteErase)
	fmt.Printf("  %-46s %10.1f\n", "  of which key shredding (ms)", res.DeleteShred)
	fmt.Printf("  %-46s %10.1f\n", "  of which certificate on the audit log (ms)", res.DeleteCertify)
	fmt.Printf("  %-46s %10.1f\n", "KEK rotation after the deletion (ms)", res.Rotate)
	if res.PGVersion != "" {
		fmt.Printf("  (%s)\n", res.PGVersion)
	}
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func pgf(v float64, version string) string {
	if version == "" {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func envInt(name string, def int) int {
	var v int
	if s := os.Getenv(name); s != "" {
		if _, err := fmt.Sscan(s, &v); err == nil && v > 0 {
			return v
		}
	}
	return def
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

var base = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

const trackProps = `"properties":{"product_id":"p-%d","sku":"SKU-%d","name":"Ceramic mug with a long descriptive name","price":12.5,"currency":"EUR","category":"Kitchen"},"context":{"ip":"203.0.113.9","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","locale":"en-GB","page":{"path":"/p/mug","url":"https://shop.example.com/p/mug"}}`

func identify(user string, i int) string {
	return fmt.Sprintf(`{"type":"identify","messageId":"id-%s","userId":%q,"traits":{"email":"%s@example.com","first_name":"Name%d","address":{"country":"FR"}},"timestamp":%q}`,
		user, user, user, i, base.Format(time.RFC3339))
}

func track(user string, n int) string {
	ts := base.Add(time.Duration(n) * time.Minute).Format(time.RFC3339)
	return fmt.Sprintf(`{"type":"track","messageId":"ev-%s-%d","userId":%q,"event":"Product Viewed",`+trackProps+`,"timestamp":%q}`,
		user, n, user, n%500, n%500, ts)
}

func decode(bodies []string) ([]event.Message, error) {
	out := make([]event.Message, 0, len(bodies))
	for _, b := range bodies {
		m, err := event.DecodeMessage([]byte(b), "", base)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func benchCustody(ctx context.Context, dir string, res *result) error {
	cfg := core.DefaultConfig()
	cfg.DataDir = dir
	if err := core.Init(ctx, cfg, core.Options{}); err != nil {
		return err
	}
	c, err := core.Open(ctx, cfg, core.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	perProfile := max(res.Events/res.Profiles, 0)
	// Producers build batches of one profile range each; 4 ingest callers
	// share the committer's group commits.
	const chunk = 250 // profiles per batch
	jobs := make(chan int)
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range jobs {
				var bodies []string
				for i := from; i < min(from+chunk, res.Profiles); i++ {
					u := fmt.Sprintf("u%d", i)
					bodies = append(bodies, identify(u, i))
					for n := 0; n < perProfile; n++ {
						bodies = append(bodies, track(u, n))
					}
				}
				msgs, err := decode(bodies)
				if err == nil {
					_, err = c.Ingest(ctx, msgs)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	last := time.Now()
	for from := 0; from < res.Profiles; from += chunk {
		select {
		case jobs <- from:
		case err := <-errc:
			close(jobs)
			wg.Wait()
			return err
		}
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			log.Printf("custody: loaded %d/%d profiles (%.0f s)", from, res.Profiles, time.Since(start).Seconds())
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	res.LoadSeconds = time.Since(start).Seconds()
	log.Printf("custody: loaded %d profiles, %d events in %.1f s", res.Profiles, res.Profiles*(perProfile), res.LoadSeconds)

	var acc, del, erase, shred, cert, rot []float64
	for r := -1; r < res.Rounds; r++ {
		u := fmt.Sprintf("target%d", r+1)
		bodies := []string{identify(u, r)} // an event too
		for n := 0; n < res.TargetEvents-1; n++ {
			bodies = append(bodies, track(u, n))
		}
		msgs, err := decode(bodies)
		if err != nil {
			return err
		}
		if _, err := c.Ingest(ctx, msgs); err != nil {
			return err
		}
		id := identity.Identifier{Type: identity.Email, Value: u + "@example.com"}
		t := time.Now()
		rep, err := c.Access(ctx, id)
		if err != nil {
			return err
		}
		accMS := float64(time.Since(t).Microseconds()) / 1000
		if rep.Person.EventCount != res.TargetEvents {
			return fmt.Errorf("access found %d events, want %d", rep.Person.EventCount, res.TargetEvents)
		}
		t = time.Now()
		req, _, err := c.HandleRequest(ctx, core.RequestSuppressWithDelete, "gdpr", id)
		if err != nil {
			return err
		}
		total := float64(time.Since(t).Microseconds()) / 1000
		var dc core.DeletionCertificate
		if err := json.Unmarshal(req.Result, &dc); err != nil {
			return err
		}
		if dc.Records["e/"] != res.TargetEvents {
			return fmt.Errorf("deletion erased %d events, want %d", dc.Records["e/"], res.TargetEvents)
		}
		log.Printf("custody round %d: access %.1f ms, delete %.1f ms (erase %.1f, shred %.1f, certificate %.1f), rotation %.1f ms",
			r+1, accMS, total-dc.Durations.Rotate, dc.Durations.Erase, dc.Durations.Shred, dc.Durations.Certify, dc.Durations.Rotate)
		if r < 0 {
			continue // warm-up
		}
		acc, del = append(acc, accMS), append(del, total-dc.Durations.Rotate)
		erase, shred, cert, rot = append(erase, dc.Durations.Erase), append(shred, dc.Durations.Shred), append(cert, dc.Durations.Certify), append(rot, dc.Durations.Rotate)
	}
	res.Access, res.Delete, res.DeleteErase, res.DeleteShred, res.DeleteCertify, res.Rotate =
		median(acc), median(del), median(erase), median(shred), median(cert), median(rot)
	return nil
}

func benchPG(ctx context.Context, url string, res *result) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&res.PGVersion); err != nil {
		return err
	}
	res.PGVersion = "PostgreSQL " + res.PGVersion + ", fsync and synchronous_commit on"
	perProfile := max(res.Events/res.Profiles, 0)
	payload := strings.ReplaceAll(fmt.Sprintf(`{"event":"Product Viewed",`+trackProps+`}`, 1, 1), "'", "''")
	start := time.Now()
	schema := []string{
		`DROP TABLE IF EXISTS events, consents, identifiers, profiles`,
		`CREATE TABLE profiles (id bigint PRIMARY KEY, traits jsonb NOT NULL, created_at timestamptz NOT NULL)`,
		`CREATE TABLE identifiers (type text NOT NULL, value text NOT NULL, profile_id bigint NOT NULL REFERENCES profiles, PRIMARY KEY (type, value))`,
		`CREATE TABLE consents (id bigserial PRIMARY KEY, profile_id bigint NOT NULL REFERENCES profiles, purpose text, status text, collected_at timestamptz)`,
		`CREATE TABLE events (id bigserial PRIMARY KEY, profile_id bigint NOT NULL REFERENCES profiles, message_id text NOT NULL UNIQUE, ts timestamptz NOT NULL, type text NOT NULL, payload jsonb NOT NULL)`,
		`INSERT INTO profiles SELECT g, jsonb_build_object('email', 'u'||g||'@example.com', 'first_name', 'Name'||g, 'address', jsonb_build_object('country','FR')), now() FROM generate_series(0, $1::int - 1) g`,
		`INSERT INTO identifiers SELECT t, CASE WHEN t = 'email' THEN 'u'||g||'@example.com' ELSE 'u'||g END, g FROM generate_series(0, $1::int - 1) g, (VALUES ('email'), ('user_id')) v(t)`,
		`INSERT INTO consents (profile_id, purpose, status, collected_at) SELECT g, 'marketing.communications.email', 'granted', now() FROM generate_series(0, $1::int - 1) g`,
		`INSERT INTO events (profile_id, message_id, ts, type, payload) SELECT p, 'ev-u'||p||'-'||n, timestamptz '2026-06-01' + n * interval '1 minute', 'track', '` + payload + `'::jsonb FROM generate_series(0, $1::int - 1) p, generate_series(0, $2::int - 1) n`,
		`CREATE INDEX ON events (profile_id, ts)`,
		`CREATE INDEX ON identifiers (profile_id)`,
		`CREATE INDEX ON consents (profile_id)`,
		`VACUUM ANALYZE`,
	}
	for i, q := range schema {
		var args []any
		switch {
		case strings.Contains(q, "$2"):
			args = []any{res.Profiles, perProfile}
		case strings.Contains(q, "$1"):
			args = []any{res.Profiles}
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("load step %d: %w", i, err)
		}
	}
	res.PGLoadSeconds = time.Since(start).Seconds()
	log.Printf("postgres: loaded %d profiles, %d events in %.1f s", res.Profiles, res.Profiles*perProfile, res.PGLoadSeconds)
	var acc, del []float64
	for r := -1; r < res.Rounds; r++ {
		pid := int64(1_000_000_001 + r)
		email := fmt.Sprintf("target%d@example.com", r+1)
		for _, q := range []string{
			fmt.Sprintf(`INSERT INTO profiles VALUES (%d, '{"email":"%s"}', now())`, pid, email),
			fmt.Sprintf(`INSERT INTO identifiers VALUES ('email', '%s', %d), ('user_id', 'target%d', %d)`, email, pid, r+1, pid),
			fmt.Sprintf(`INSERT INTO consents (profile_id, purpose, status, collected_at) VALUES (%d, 'marketing.communications.email', 'granted', now())`, pid),
			fmt.Sprintf(`INSERT INTO events (profile_id, message_id, ts, type, payload) SELECT %d, 'ev-target%d-'||n, timestamptz '2026-06-01' + n * interval '1 minute', 'track', '%s'::jsonb FROM generate_series(0, %d - 1) n`, pid, r+1, payload, res.TargetEvents),
			`ANALYZE events`,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return err
			}
		}
		// Access: resolve the identifier, then everything of the profile.
		t := time.Now()
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
		if err != nil {
			return err
		}
		var p int64
		if err := tx.QueryRow(ctx, `SELECT profile_id FROM identifiers WHERE type = 'email' AND value = $1`, email).Scan(&p); err != nil {
			return err
		}
		n := 0
		for _, q := range []string{
			`SELECT id, traits::text, created_at FROM profiles WHERE id = $1`,
			`SELECT type, value FROM identifiers WHERE profile_id = $1`,
			`SELECT purpose, status, collected_at FROM consents WHERE profile_id = $1 ORDER BY collected_at`,
			`SELECT message_id, ts, type, payload::text FROM events WHERE profile_id = $1 ORDER BY ts`,
		} {
			rows, err := tx.Query(ctx, q, p)
			if err != nil {
				return err
			}
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		accMS := float64(time.Since(t).Microseconds()) / 1000
		if n < res.TargetEvents {
			return fmt.Errorf("postgres access read %d rows", n)
		}
		// Delete: every row of the person, one durable transaction.
		t = time.Now()
		tx, err = conn.Begin(ctx)
		if err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM events WHERE profile_id = $1`,
			`DELETE FROM consents WHERE profile_id = $1`,
			`DELETE FROM identifiers WHERE profile_id = $1`,
			`DELETE FROM profiles WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, p); err != nil {
				return err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		delMS := float64(time.Since(t).Microseconds()) / 1000
		log.Printf("postgres round %d: access %.1f ms, delete %.1f ms", r+1, accMS, delMS)
		if r >= 0 {
			acc, del = append(acc, accMS), append(del, delMS)
		}
	}
	res.PGAccess, res.PGDelete = median(acc), median(del)
	return nil
}
