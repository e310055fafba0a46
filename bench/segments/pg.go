package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgSchema is what a DBA would build for the same job: one row per
// profile, consent records with history, events with the columns segments
// read, indexed for per-person lookups by event name and time.
const pgSchema = `
DROP TABLE IF EXISTS events, consent, profiles;
CREATE TABLE profiles (user_id text PRIMARY KEY, email text NOT NULL, country text NOT NULL, state text NOT NULL, first_seen timestamptz NOT NULL);
CREATE TABLE consent (user_id text NOT NULL, purpose text NOT NULL, status text NOT NULL, collected_at timestamptz NOT NULL);
CREATE TABLE events (user_id text NOT NULL, name text NOT NULL, ts timestamptz NOT NULL, total double precision, coupon text);`

const pgIndexes = `
CREATE INDEX events_user_name_ts ON events (user_id, name, ts);
CREATE INDEX events_name_ts ON events (name, ts);
CREATE INDEX consent_user_purpose ON consent (user_id, purpose, collected_at);
ANALYZE;`

func pgLoad(ctx context.Context, pg *pgx.Conn, pop population) error {
	if _, err := pg.Exec(ctx, pgSchema); err != nil {
		return err
	}
	if _, err := pg.CopyFrom(ctx, pgx.Identifier{"profiles"}, []string{"user_id", "email", "country", "state", "first_seen"},
		pgx.CopyFromSlice(pop.n, func(i int) ([]any, error) {
			p := pop.person(i)
			return []any{p.user, p.user + "@example.com", p.country, p.state, p.firstSeen}, nil
		})); err != nil {
		return err
	}
	var consent [][]any
	for i := range pop.n {
		p := pop.person(i)
		switch p.consent {
		case 1:
			consent = append(consent, []any{p.user, "marketing.communications", "granted", p.firstSeen})
		case -1:
			consent = append(consent, []any{p.user, "marketing.communications", "denied", p.firstSeen})
		}
	}
	if _, err := pg.CopyFrom(ctx, pgx.Identifier{"consent"}, []string{"user_id", "purpose", "status", "collected_at"}, pgx.CopyFromRows(consent)); err != nil {
		return err
	}
	rows := make(chan []any, 1024)
	go func() {
		defer close(rows)
		for i := range pop.n {
			p := pop.person(i)
			for _, e := range p.events {
				rows <- eventRow(p.user, e)
			}
		}
	}()
	if _, err := pg.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, &chanSource{c: rows}); err != nil {
		return err
	}
	_, err := pg.Exec(ctx, pgIndexes)
	return err
}

var eventColumns = []string{"user_id", "name", "ts", "total", "coupon"}

func eventRow(user string, e ev) []any {
	var total, coupon any
	if e.name == "Order Completed" {
		total, coupon = e.total, e.coupon
	}
	return []any{user, e.name, e.at, total, coupon}
}

// pgAppend adds the events of the live stream (c).
func pgAppend(ctx context.Context, pg *pgx.Conn, streamed []streamedEvent) error {
	rows := make([][]any, len(streamed))
	for i, s := range streamed {
		rows[i] = eventRow(s.user, s.ev)
	}
	_, err := pg.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(rows))
	return err
}

type chanSource struct {
	c   chan []any
	cur []any
}

func (s *chanSource) Next() bool {
	r, ok := <-s.c
	s.cur = r
	return ok
}
func (s *chanSource) Values() ([]any, error) { return s.cur, nil }
func (s *chanSource) Err() error             { return nil }

// pgAllowed applies the default policy bundle's rules for the segment
// purpose (marketing.communications.email, covered by consent to
// marketing.communications): EU and UK opt in, US states opt out; the
// latest record wins.
const pgAllowed = `allowed AS (
  SELECT p.user_id FROM profiles p
  LEFT JOIN LATERAL (SELECT c.status FROM consent c WHERE c.user_id = p.user_id AND c.purpose = 'marketing.communications'
                     ORDER BY c.collected_at DESC LIMIT 1) c ON true
  WHERE (p.country = 'US' AND coalesce(c.status, '') <> 'denied') OR (p.country <> 'US' AND c.status = 'granted'))`

var pgSegments = map[string]string{
	"cart_abandoners": `WITH ` + pgAllowed + `
SELECT count(*) FROM allowed a
WHERE EXISTS (SELECT 1 FROM events e WHERE e.user_id = a.user_id AND e.name = 'Product Added' AND e.ts > $1::timestamptz - interval '3 days' AND e.ts <= $1)
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = a.user_id AND e.name = 'Order Completed' AND e.ts > $1::timestamptz - interval '3 days' AND e.ts <= $1)`,
	"at_risk": `WITH ` + pgAllowed + `
SELECT count(*) FROM allowed a
WHERE EXISTS (SELECT 1 FROM events e WHERE e.user_id = a.user_id AND e.name = 'Order Completed' AND e.ts <= $1)
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = a.user_id AND e.name = 'Order Completed' AND e.ts > $1::timestamptz - interval '90 days' AND e.ts <= $1)`,
	// Top 10% by revenue of the last 365 days among allowed people with an
	// order; ties at the threshold included (segments.Thresholds).
	"vip": `WITH ` + pgAllowed + `,
rev AS (SELECT e.user_id, sum(CASE WHEN e.ts >= $1::timestamptz - interval '365 days' AND e.ts <= $1 THEN e.total ELSE 0 END) AS r
        FROM allowed a JOIN events e ON e.user_id = a.user_id AND e.name = 'Order Completed' GROUP BY e.user_id),
th AS (SELECT r FROM rev ORDER BY r DESC OFFSET greatest(ceil(0.10 * (SELECT count(*) FROM rev))::int - 1, 0) LIMIT 1)
SELECT count(*) FROM rev WHERE r >= (SELECT r FROM th)`,
}

// pgSegment runs a segment's query and returns the member count and the
// seconds it took.
func pgSegment(ctx context.Context, pg *pgx.Conn, name string) (int, float64) {
	q, ok := pgSegments[name]
	if !ok {
		panic(fmt.Sprintf("no SQL for %s", name))
	}
	t0 := time.Now()
	var n int
	if err := pg.QueryRow(ctx, q, now).Scan(&n); err != nil {
		panic(fmt.Sprintf("%s: %v", name, err))
	}
	return n, time.Since(t0).Seconds()
}
