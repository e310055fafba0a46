package core

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/segments"
)

// reportFixture is the store of TestSegmentReport: twelve people, two
// segments refreshed on a schedule, orders and refunds around the period
// October 2026. The splits segment's name is chosen so that the keyed
// hash puts p1-p4 in treatment and p5, p6, p7, p9 in the holdout (profile
// ids are random, so the name is searched for; the golden file shows it
// as <segment>).
type reportFixture struct {
	c       *CDP
	winback string
	out     string
}

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

const fixtureSplits = `{"treatment": 50, "holdout": 50}`

func newReportFixture(t *testing.T, dests ...map[string]DestinationConfig) *reportFixture {
	t.Helper()
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = 0 // memberships change at the refreshes below only
	out := t.TempDir()
	cfg.Destinations = map[string]DestinationConfig{
		"newsletter": {Kind: "email", Format: "csv", Dir: out, Fields: []string{"email"}},
		"feed":       {Kind: "email", Format: "jsonl", Dir: out, Fields: []string{"email"}},
	}
	for _, d := range dests {
		maps.Copy(cfg.Destinations, d)
	}
	c := openTest(t, cfg)
	ctx := context.Background()
	var msgs []string
	id := 0
	add := func(body string) {
		id++
		msgs = append(msgs, strings.Replace(body, "{", fmt.Sprintf(`{"messageId":"m%d",`, id), 1))
	}
	for i := 1; i <= 12; i++ {
		addr, campaign := `{"country":"US","state":"CA"}`, "none"
		if i <= 8 {
			campaign = "winback"
		}
		if i == 11 {
			addr = `{"country":"DE"}` // EU, no consent: denied
		}
		add(fmt.Sprintf(`{"type":"identify","userId":"p%d","traits":{"email":"p%d@example.com","campaign":%q,"address":%s},"timestamp":"2026-09-01T00:00:00Z"}`, i, i, campaign, addr))
	}
	order := func(p int, at string, rev float64) {
		add(fmt.Sprintf(`{"type":"track","userId":"p%d","event":"Order Completed","properties":{"order_id":"o%d","revenue":%g,"currency":"USD"},"timestamp":%q}`, p, id, rev, at))
	}
	refund := func(p int, at string) {
		add(fmt.Sprintf(`{"type":"track","userId":"p%d","event":"Order Refunded","properties":{"order_id":"r%d"},"timestamp":%q}`, p, id, at))
	}
	order(1, "2026-08-01T10:00:00Z", 50)
	order(1, "2026-10-05T10:00:00Z", 100)
	order(2, "2026-10-03T10:00:00Z", 40)
	order(2, "2026-10-20T00:00:00Z", 60)
	order(4, "2026-10-31T23:00:00Z", 30)
	refund(4, "2026-10-31T23:30:00Z")
	order(5, "2026-11-01T00:00:00Z", 999) // at the end of the period: outside
	order(6, "2026-10-12T10:00:00Z", 20)
	order(7, "2026-09-30T23:59:59Z", 500) // just before: outside
	order(9, "2026-06-01T10:00:00Z", 10)
	order(9, "2026-07-01T10:00:00Z", 10)
	order(9, "2026-10-16T10:00:00Z", 80)
	refund(9, "2026-10-18T10:00:00Z")
	order(8, "2026-10-02T10:00:00Z", 70)
	order(11, "2026-10-02T10:00:00Z", 1000)
	order(12, "2026-10-02T10:00:00Z", 1000)
	ingestAll(t, c, msgs...)
	consentSet(t, c, "p12@example.com", "marketing.communications.email", "denied", "2026-09-01T00:00:00Z", nil)

	// The name whose split puts p1-p4 in treatment, the others held out.
	roots := map[int]uuid.UUID{}
	for _, i := range []int{1, 2, 3, 4, 5, 6, 7, 9} {
		err := c.withPerson(ctx, identity.Identifier{Type: identity.UserID, Value: fmt.Sprintf("p%d", i)}, func(_ *store.Txn, root uuid.UUID, _ []uuid.UUID) error {
			roots[i] = root
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	name := ""
	for n := 0; n < 5000 && name == ""; n++ {
		cand := fmt.Sprintf("winback-%d", n)
		s, err := c.splitter(&segments.Definition{Name: cand, Splits: []segments.Split{{Name: "holdout", Weight: 50}, {Name: "treatment", Weight: 50}}})
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for i, r := range roots {
			if (s.Group(r[:]) == "treatment") != (i <= 4) {
				ok = false
				break
			}
		}
		if ok {
			name = cand
		}
	}
	if name == "" {
		t.Fatal("no segment name gives the wanted split (1 in 256 a try)")
	}
	for _, d := range []string{
		`{"name":"` + name + `","purpose":"marketing.communications.email","where":{"trait":"campaign","eq":"winback"},"splits":` + fixtureSplits + `}`,
		`{"name":"repeat","purpose":"marketing.communications.email","where":{"event":"Order Completed","count":{"gte":2}}}`,
	} {
		if _, err := c.ApplySegmentData(ctx, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	sweep := func(at string) {
		t.Helper()
		if _, err := c.RefreshAll(ctx, day(at)); err != nil {
			t.Fatal(err)
		}
	}
	sweep("2026-09-20T12:00:00Z") // p1-p8 enter winback, p9 repeat
	ingestAll(t, c, `{"type":"identify","messageId":"c8","userId":"p8","traits":{"campaign":"none"},"timestamp":"2026-09-24T00:00:00Z"}`)
	sweep("2026-09-25T12:00:00Z") // p8 leaves winback before the period
	ingestAll(t, c, `{"type":"identify","messageId":"c7","userId":"p7","traits":{"campaign":"none"},"timestamp":"2026-10-09T00:00:00Z"}`)
	sweep("2026-10-10T12:00:00Z") // p7 leaves winback; p1 enters repeat from winback
	ingestAll(t, c, `{"type":"identify","messageId":"c9","userId":"p9","traits":{"campaign":"winback"},"timestamp":"2026-10-14T00:00:00Z"}`)
	sweep("2026-10-15T12:00:00Z") // p9 enters winback from repeat
	sweep("2026-10-20T12:00:00Z") // p2 enters repeat from winback
	return &reportFixture{c: c, winback: name, out: out}
}

// TestSegmentReport checks the report's figures on the fixture against
// the ones worked out by hand below, then the whole report against the
// golden file.
func TestSegmentReport(t *testing.T) {
	f := newReportFixture(t)
	ctx := context.Background()
	rep, err := f.c.SegmentReport(ctx, f.winback, day("2026-10-01T00:00:00Z"), day("2026-11-01T00:00:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	// Allowed: p1-p10; denied: p11 (EU, no consent), p12 (opted out).
	if rep.People != 10 || rep.NotConsented != 2 {
		t.Errorf("people %d, not consented %d; want 10, 2", rep.People, rep.NotConsented)
	}
	// Members in October: p1-p7 (p7 left on the 10th) and p9 (entered on
	// the 15th); p8 left in September.
	//   p1 100 | p2 40+60 | p3 - | p4 30, refund | p5 - (order at the end) |
	//   p6 20 | p7 - (order just before) | p9 80, refund
	members := GroupFigures{People: 8, Buyers: 5, ConversionRate: 0.625, Orders: 6, OrdersPerPerson: 0.75,
		Revenue: 330, RevenuePerPerson: 41.25, AverageOrderValue: 55, RepeatBuyers: 1, RepeatPurchaseRate: 0.2,
		Refunds: 2, RefundRate: 0.333333}
	// Non-members: p8 70 | p10 -.
	others := GroupFigures{People: 2, Buyers: 1, ConversionRate: 0.5, Orders: 1, OrdersPerPerson: 0.5,
		Revenue: 70, RevenuePerPerson: 35, AverageOrderValue: 70}
	// Treatment p1-p4; holdout p5, p6, p7, p9.
	treatment := GroupFigures{People: 4, Buyers: 3, ConversionRate: 0.75, Orders: 4, OrdersPerPerson: 1,
		Revenue: 230, RevenuePerPerson: 57.5, AverageOrderValue: 57.5, RepeatBuyers: 1, RepeatPurchaseRate: 0.333333,
		Refunds: 1, RefundRate: 0.25}
	holdout := GroupFigures{People: 4, Buyers: 2, ConversionRate: 0.5, Orders: 2, OrdersPerPerson: 0.5,
		Revenue: 100, RevenuePerPerson: 25, AverageOrderValue: 50, Refunds: 1, RefundRate: 0.5}
	for _, g := range []struct {
		name      string
		got, want GroupFigures
	}{{"members", rep.Members, members}, {"non-members", rep.NonMembers, others}} {
		g.got.rev = running{}
		if !reflect.DeepEqual(g.got, g.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", g.name, g.got, g.want)
		}
	}
	if rep.Splits == nil || rep.Splits.Baseline != "holdout" || len(rep.Splits.Comparisons) != 1 {
		t.Fatalf("splits: %+v", rep.Splits)
	}
	for name, want := range map[string]GroupFigures{"treatment": treatment, "holdout": holdout} {
		got := rep.Splits.Groups[name]
		got.rev = running{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	// Conversion 3/4 vs 2/4: 0.25 ± 1.959964·sqrt(.75·.25/4 + .5·.5/4).
	// Revenue per person (100, 100, 0, 30) vs (0, 20, 0, 80): 32.5, Welch
	// s² 7675/3 and 4300/3, SE 31.58982, ν 5.558478, t 2.494807 (the
	// interval's bounds computed with 30-digit arithmetic).
	cmp := rep.Splits.Comparisons[0]
	near := func(what string, d Difference, est, lo, hi float64) {
		t.Helper()
		if d.CI95 == nil || math.Abs(d.Estimate-est) > 1e-6 || math.Abs(d.CI95[0]-lo) > 1e-5 || math.Abs(d.CI95[1]-hi) > 1e-5 || d.Significant {
			t.Errorf("%s: %+v (ci %v), want %g [%g, %g], not significant", what, d, d.CI95, est, lo, hi)
		}
	}
	near("conversion", cmp.ConversionRate, 0.25, -0.398197160217, 0.898197160217)
	near("revenue per person", cmp.RevenuePerPerson, 32.5, -46.310514479741, 111.310514479741)
	if !reflect.DeepEqual(rep.Movement, Movement{From: map[string]int{"repeat": 1}, To: map[string]int{"repeat": 2}}) {
		t.Errorf("movement %+v; want from repeat 1 (p9), to repeat 2 (p1, p2)", rep.Movement)
	}
	if len(rep.Days) != 31 || rep.Days[0].Day != "2026-10-01" || rep.Days[30].Day != "2026-10-31" {
		t.Fatalf("days: %+v", rep.Days)
	}
	for _, d := range rep.Days {
		want := DayFlow{Day: d.Day}
		switch d.Day {
		case "2026-10-10":
			want.Exited = 1
		case "2026-10-15":
			want.Entered = 1
		}
		if d != want {
			t.Errorf("day %+v, want %+v", d, want)
		}
	}

	got, _ := json.MarshalIndent(rep, "", "  ")
	got = bytes.ReplaceAll(got, []byte(f.winback), []byte("<segment>"))
	got = bytes.ReplaceAll(got, []byte(rep.BundleHash), []byte("<bundle>"))
	golden := filepath.Join("testdata", "segment_report.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("report differs from %s (go test -update to rewrite):\n%s", golden, got)
	}

	// A report names no one: no profile id, no identifier.
	raw, _ := json.Marshal(rep)
	for i := 1; i <= 12; i++ {
		if bytes.Contains(raw, []byte(fmt.Sprintf("p%d@", i))) {
			t.Fatal("the report holds an email")
		}
	}
	_ = f.c.eachPerson(ctx, func(_ *store.Txn, root uuid.UUID, _ []uuid.UUID) error {
		if bytes.Contains(raw, []byte(root.String())) {
			t.Fatal("the report holds a profile id")
		}
		return nil
	})
	tail, _ := f.c.AuditTail(ctx, 1)
	if tail[0].Kind != "segment.report" {
		t.Fatalf("no audit record: %+v", tail)
	}
}

// The splits show in eval, show and refresh counts, and every export row
// carries its person's group, the same one the report uses.
func TestSplitsInCountsAndExports(t *testing.T) {
	const secret = "split-hook-secret"
	t.Setenv("CUSTODY_TEST_SPLIT_SECRET", secret)
	var mu sync.Mutex
	var hooked []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Rows []map[string]any `json:"rows"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		hooked = append(hooked, b.Rows...)
		mu.Unlock()
	}))
	defer srv.Close()
	f := newReportFixture(t, map[string]DestinationConfig{"hook": {Kind: "email", URL: srv.URL, SecretEnv: "CUSTODY_TEST_SPLIT_SECRET", Fields: []string{"email"}}})
	ctx := context.Background()
	wantGroup := func(email string) string {
		var i int
		if _, err := fmt.Sscanf(email, "p%d@example.com", &i); err != nil {
			t.Fatalf("row email %q", email)
		}
		return map[bool]string{true: "treatment", false: "holdout"}[i <= 4]
	}
	// Members now: p1-p6, p9 (treatment p1-p4; holdout p5, p6, p9).
	want := map[string]int{"treatment": 4, "holdout": 3}
	ev, err := f.c.EvaluateSegment(ctx, f.winback, day("2026-10-21T00:00:00Z"))
	if err != nil || ev.Allowed != 7 || !reflect.DeepEqual(ev.Groups, want) {
		t.Fatalf("eval %+v %v", ev, err)
	}
	sh, err := f.c.ShowSegment(ctx, f.winback)
	if err != nil || !reflect.DeepEqual(sh.Groups, want) {
		t.Fatalf("show %+v %v", sh, err)
	}
	rr, err := f.c.RefreshSegment(ctx, f.winback, day("2026-10-21T00:00:00Z"))
	if err != nil || !reflect.DeepEqual(rr.Groups, want) {
		t.Fatalf("refresh %+v %v", rr, err)
	}
	if ev, _ := f.c.EvaluateSegment(ctx, "repeat", day("2026-10-21T00:00:00Z")); ev.Groups != nil {
		t.Fatalf("a segment without splits has groups: %+v", ev.Groups)
	}
	rep, err := f.c.ExportSegment(ctx, f.winback, "newsletter", day("2026-10-21T00:00:00Z"))
	if err != nil || rep.Rows != 7 || !reflect.DeepEqual(rep.Fields, []string{"email", "split"}) {
		t.Fatalf("export %+v %v", rep, err)
	}
	fh, err := os.Open(rep.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	if err != nil || len(rows) != 8 {
		t.Fatalf("csv %v %v", rows, err)
	}
	for _, r := range rows[1:] {
		if r[1] != wantGroup(r[0]) {
			t.Errorf("%s exported in %q, want %q", r[0], r[1], wantGroup(r[0]))
		}
	}
	// JSON Lines and webhook rows carry "split" too.
	feed, err := f.c.ExportSegment(ctx, f.winback, "feed", day("2026-10-21T00:00:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(feed.Path)
	var jsonRows []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		jsonRows = append(jsonRows, m)
	}
	if _, err := f.c.ExportSegment(ctx, f.winback, "hook", day("2026-10-21T00:00:00Z")); err != nil {
		t.Fatal(err)
	}
	for what, rs := range map[string][]map[string]any{"jsonl": jsonRows, "webhook": hooked} {
		if len(rs) != 7 {
			t.Fatalf("%s: %d rows", what, len(rs))
		}
		for _, r := range rs {
			if email, _ := r["email"].(string); r["split"] != wantGroup(email) || len(r) != 2 {
				t.Errorf("%s row %v", what, r)
			}
		}
	}
	// The ledger says the split went too (an access report shows it).
	acc, err := f.c.Access(ctx, identity.Identifier{Type: identity.Email, Value: "p1@example.com"})
	if err != nil || len(acc.Exports) != 3 || !reflect.DeepEqual(acc.Exports[0].Fields, []string{"email", "split"}) {
		t.Fatalf("access exports %+v %v", acc.Exports, err)
	}
}

// Live updates count moves too, and a merge that only moves a membership
// to the person's new root is neither an entry nor an exit.
func TestFlowFromLiveUpdates(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(time.Hour) // queued; flushed by hand
	c := openTest(t, cfg)
	ctx := context.Background()
	for _, d := range []string{
		`{"name":"first","purpose":"essential.service","where":{"event":"Order Completed","count":{"eq":1}}}`,
		`{"name":"repeat","purpose":"essential.service","where":{"event":"Order Completed","count":{"gte":2}}}`,
	} {
		if _, err := c.ApplySegmentData(ctx, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	flush := func(at string) {
		t.Helper()
		if _, err := c.FlushLive(ctx, day(at)); err != nil {
			t.Fatal(err)
		}
	}
	ingestAll(t, c, `{"type":"identify","messageId":"u0","userId":"u","timestamp":"2026-10-01T00:00:00Z"}`)
	flush("2026-10-01T12:00:00Z")
	ingestAll(t, c, `{"type":"track","messageId":"a1","anonymousId":"x","event":"Order Completed","properties":{"total":5},"timestamp":"2026-10-02T10:00:00Z"}`)
	flush("2026-10-02T12:00:00Z") // x enters first
	ingestAll(t, c, `{"type":"track","messageId":"a2","anonymousId":"x","event":"Order Completed","properties":{"total":5},"timestamp":"2026-10-03T10:00:00Z"}`)
	flush("2026-10-03T12:00:00Z") // x leaves first, enters repeat: a move
	// u (the older profile) and x are the same person: x's membership
	// moves to the root u.
	ingestAll(t, c, `{"type":"identify","messageId":"u1","userId":"u","anonymousId":"x","timestamp":"2026-10-04T10:00:00Z"}`)
	flush("2026-10-04T12:00:00Z")
	flows := map[string]flowDay{}
	err := c.store.View(ctx, func(tx *store.Txn) error {
		for _, seg := range []string{"first", "repeat"} {
			for _, d := range []string{"2026-10-02", "2026-10-03", "2026-10-04"} {
				f, err := getFlow(tx, store.FlowKey(seg, unixDay(day(d+"T00:00:00Z"))))
				if err != nil {
					return err
				}
				if f.Entered+f.Exited > 0 {
					flows[seg+" "+d] = f
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]flowDay{
		"first 2026-10-02":  {Entered: 1},
		"first 2026-10-03":  {Exited: 1},
		"repeat 2026-10-03": {Entered: 1, From: map[string]int{"first": 1}},
	}
	if !reflect.DeepEqual(flows, want) {
		t.Fatalf("flows %+v\nwant %+v", flows, want)
	}
	ms, err := c.Memberships(ctx, identity.Identifier{Type: identity.UserID, Value: "u"})
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, m := range ms {
		if m.Segment == "repeat" && m.ExitedAt == nil {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("after the merge: %+v", ms)
	}
}

func TestMembershipIntervals(t *testing.T) {
	t0 := day("2026-10-01T00:00:00Z")
	at := func(d int) time.Time { return t0.AddDate(0, 0, d) }
	ptr := func(t time.Time) *time.Time { return &t }
	// In 1-3, out, in 5-7, out, in since 9.
	rec := membershipRecord{}
	found := false
	for _, iv := range [][2]int{{1, 3}, {5, 7}} {
		rec = reentered(rec, found, at(iv[0]))
		rec.ExitedAt = ptr(at(iv[1]))
		found = true
	}
	rec = reentered(rec, found, at(9))
	if len(rec.Earlier) != 2 || rec.ExitedAt != nil {
		t.Fatalf("record %+v", rec)
	}
	for _, tc := range []struct {
		from, to int
		want     bool
	}{{0, 1, false}, {0, 2, true}, {3, 5, false}, {2, 4, true}, {7, 9, false}, {6, 8, true}, {8, 10, true}, {20, 30, true}} {
		if got := rec.overlaps(at(tc.from), at(tc.to)); got != tc.want {
			t.Errorf("[%d, %d): %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	// At most maxEarlier are kept, the latest.
	for i := 0; i < 20; i++ {
		rec.ExitedAt = ptr(at(10 + 2*i))
		rec = reentered(rec, true, at(11+2*i))
	}
	if len(rec.Earlier) != maxEarlier || rec.Earlier[maxEarlier-1][1] != at(48).UnixNano() {
		t.Fatalf("earlier %v", rec.Earlier)
	}
	b, _ := json.Marshal(rec)
	if bytes.Contains(b, []byte(`"exited_at"`)) {
		t.Fatal("an active record reads as exited (scanActive)")
	}
}

func TestSegmentReportRefusesBadPeriods(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"s","purpose":"essential.service","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]string{
		{"2026-10-02T00:00:00Z", "2026-10-01T00:00:00Z"},
		{"2026-10-01T00:00:00Z", "2026-10-01T00:00:00Z"},
		{"2000-01-01T00:00:00Z", "2026-10-01T00:00:00Z"},
	} {
		if _, err := c.SegmentReport(ctx, "s", day(p[0]), day(p[1])); err == nil || !strings.Contains(err.Error(), "invalid input") {
			t.Errorf("%v: %v", p, err)
		}
	}
	if _, err := c.SegmentReport(ctx, "nope", time.Time{}, time.Time{}); err == nil || !strings.Contains(err.Error(), "segment not found") {
		t.Errorf("unknown segment: %v", err)
	}
	// Defaults: the 30 days up to now.
	rep, err := c.SegmentReport(ctx, "s", time.Time{}, time.Time{})
	if err != nil || !rep.Until.Equal(fixedNow) || !rep.Since.Equal(fixedNow.AddDate(0, 0, -30)) || len(rep.Days) != 31 {
		t.Fatalf("defaults: %+v %v", rep, err)
	}
}

// Erasing a person removes their memberships (with the earlier intervals
// the access report showed) and takes them out of every report; the
// per-day flow counts, which name no one, stay as they were.
func TestErasureAndTheReport(t *testing.T) {
	f := newReportFixture(t)
	ctx := context.Background()
	// p8 comes back into winback: their record keeps the earlier interval.
	ingestAll(t, f.c, `{"type":"identify","messageId":"c8b","userId":"p8","traits":{"campaign":"winback"},"timestamp":"2026-10-21T00:00:00Z"}`)
	if _, err := f.c.RefreshAll(ctx, day("2026-10-22T12:00:00Z")); err != nil {
		t.Fatal(err)
	}
	p8 := identity.Identifier{Type: identity.Email, Value: "p8@example.com"}
	acc, err := f.c.Access(ctx, p8)
	if err != nil {
		t.Fatal(err)
	}
	var wb *MembershipView
	for i := range acc.Memberships {
		if acc.Memberships[i].Segment == f.winback {
			wb = &acc.Memberships[i]
		}
	}
	if wb == nil || wb.ExitedAt != nil || !wb.EnteredAt.Equal(day("2026-10-22T12:00:00Z")) || len(wb.Earlier) != 1 ||
		!wb.Earlier[0].EnteredAt.Equal(day("2026-09-20T12:00:00Z")) || !wb.Earlier[0].ExitedAt.Equal(day("2026-09-25T12:00:00Z")) {
		t.Fatalf("p8's membership in the access report: %+v", wb)
	}
	period := [2]time.Time{day("2026-10-01T00:00:00Z"), day("2026-11-01T00:00:00Z")}
	before, err := f.c.SegmentReport(ctx, f.winback, period[0], period[1])
	if err != nil || before.Members.People != 9 || before.People != 10 {
		t.Fatalf("before: %+v %v", before, err)
	}
	flows := func() map[string]string {
		out := map[string]string{}
		_ = f.c.store.View(ctx, func(tx *store.Txn) error {
			return tx.Scan([]byte(store.PrefixFlow), store.ScanOptions{}, func(k, v []byte) error {
				out[string(k)] = string(v)
				return nil
			})
		})
		return out
	}
	flowsBefore := flows()
	cert, err := f.c.Delete(ctx, p8)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Records[string(store.PrefixMembership)] != 1 {
		t.Fatalf("memberships erased: %v", cert.Records)
	}
	if !reflect.DeepEqual(flows(), flowsBefore) {
		t.Fatal("the flow counts changed with an erasure")
	}
	after, err := f.c.SegmentReport(ctx, f.winback, period[0], period[1])
	if err != nil || after.Members.People != 8 || after.People != 9 || after.Members.Orders != before.Members.Orders-1 {
		t.Fatalf("after: %+v %v", after, err)
	}
}
