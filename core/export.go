package core

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/segments"
)

// ExportReport says what an export did. Counts and the file; never who.
type ExportReport struct {
	ID           string    `json:"id"`
	Segment      string    `json:"segment"`
	Destination  string    `json:"destination"`
	Purpose      string    `json:"purpose"`
	At           time.Time `json:"at"`
	Path         string    `json:"path"`
	Rows         int       `json:"rows"`
	Fields       []string  `json:"fields"`
	NotConsented int       `json:"not_consented"`
	ExportDenied int       `json:"export_denied"`

	// DestinationPurpose is what the destination uses the data for (its
	// preset's or configured purpose), asked of the gate too.
	DestinationPurpose string `json:"destination_purpose,omitempty"`
}

// ExportProgress is where a running export stands: counts only, never who.
type ExportProgress struct {
	// Stage is "evaluating" (people read and put through the gate),
	// "ledger" (each recipient recorded for access and deletion reports,
	// before the rows go out), "writing" (rows written to the file or sent
	// to the webhook), or "done".
	Stage string `json:"stage"`
	// People is how many people evaluation has read so far. A segment with
	// a population-relative condition (top/bottom N%) reads everyone twice,
	// and both passes are counted.
	People int `json:"people"`
	// Rows is how many rows were written or sent so far; Total is how many
	// there will be, known once evaluation is over (0 before).
	Rows  int `json:"rows"`
	Total int `json:"total"`
}

// ExportOption is a per-call setting of ExportSegment.
type ExportOption func(*exportSettings)

type exportSettings struct {
	progress func(ExportProgress)
}

// WithProgress has ExportSegment report to fn as it goes: at every stage
// change with exact counts, and in between about ten times a second. fn is
// called from the goroutine running the export and must not block long.
func WithProgress(fn func(ExportProgress)) ExportOption {
	return func(s *exportSettings) { s.progress = fn }
}

// progressMeter throttles an export's progress reports. A nil meter (no
// WithProgress) does nothing. The throttle uses the wall clock, not the
// CDP's clock: it paces reports to a human, it decides nothing.
type progressMeter struct {
	fn   func(ExportProgress)
	p    ExportProgress
	last time.Time
}

func newProgressMeter(opts []ExportOption) *progressMeter {
	var s exportSettings
	for _, o := range opts {
		o(&s)
	}
	if s.progress == nil {
		return nil
	}
	return &progressMeter{fn: s.progress}
}

// stage reports a stage change, always.
func (m *progressMeter) stage(stage string, total int) {
	if m == nil {
		return
	}
	m.p.Stage, m.p.Total = stage, total
	m.emit()
}

func (m *progressMeter) people(n int) {
	if m == nil {
		return
	}
	m.p.People += n
	m.maybe()
}

func (m *progressMeter) rows(n int) {
	if m == nil {
		return
	}
	m.p.Rows += n
	m.maybe()
}

func (m *progressMeter) maybe() {
	if time.Since(m.last) >= 100*time.Millisecond {
		m.emit()
	}
}

func (m *progressMeter) emit() {
	m.last = time.Now()
	m.fn(m.p)
}

// counted wraps people so the meter sees each person read.
func (m *progressMeter) counted(people segments.People) segments.People {
	if m == nil {
		return people
	}
	return func(yield func(segments.Candidate) bool) {
		for cand := range people {
			m.people(1)
			if !yield(cand) {
				return
			}
		}
	}
}

// ledgerEntry is the sealed value of x/<pid>/<export id>: an access report
// lists recipients from it, a deletion report who must be told.
type ledgerEntry struct {
	Export      string    `json:"export"`
	Segment     string    `json:"segment"`
	Destination string    `json:"destination"`
	Kind        string    `json:"kind"`
	At          time.Time `json:"at"`
	Fields      []string  `json:"fields"`
}

// ExportSegment writes the segment's members to a destination: only people
// the gate allowed for the segment's purpose and for this destination, and
// only the fields the decision allows. Every exported person gets a ledger
// entry, and the export a record on the audit log. WithProgress follows
// it as it runs.
func (c *CDP) ExportSegment(ctx context.Context, name, destination string, now time.Time, opts ...ExportOption) (ExportReport, error) {
	meter := newProgressMeter(opts)
	dc, ok := c.cfg.Destinations[destination]
	if !ok {
		return ExportReport{}, fmt.Errorf("%w: no destination %q in the configuration", ErrInvalidInput, destination)
	}
	dc, err := c.destination(destination, dc)
	if err != nil {
		return ExportReport{}, err
	}
	set, err := c.segmentSet(ctx, name)
	if err != nil {
		return ExportReport{}, err
	}
	if now.IsZero() {
		now = c.now()
	}
	dest := policies.Destination{Name: destination, Kind: dc.Kind, Region: dc.Region, Fields: dc.Fields}
	purpose := set.Get(name).Purpose()
	var res *segments.ExportResult
	// An erasure waits from here to the ledger write (exportMu): the people
	// this export reads and delivers are in the ledger before it looks.
	// Not through the delivery, which can take minutes of retries: the
	// certificate names the export either way.
	c.exportMu.RLock()
	ledgered := sync.OnceFunc(c.exportMu.RUnlock)
	defer ledgered()
	meter.stage("evaluating", 0)
	err = c.store.View(ctx, func(tx *store.Txn) error {
		var err error
		var scanErr error
		people, g := c.exportVia(dc, meter.counted(c.people(ctx, tx, now, set, purpose, nil, &scanErr)), gate{c: c, role: policies.RoleMarketer})
		res, err = segments.Export(ctx, set, name, people, g, dest, now)
		return errors.Join(err, scanErr)
	})
	if err != nil {
		return ExportReport{}, fmt.Errorf("export %s: %w", name, err)
	}
	id := uuid.Must(uuid.NewV7()).String()
	rep := ExportReport{ID: id, Segment: name, Destination: destination, Purpose: purpose, DestinationPurpose: dc.Purpose, At: now.UTC(), Rows: len(res.Rows),
		NotConsented: res.NotConsented, ExportDenied: res.ExportDenied, Fields: []string{}}
	if len(res.Rows) > 0 {
		for _, f := range res.Rows[0].Fields() {
			rep.Fields = append(rep.Fields, f.Name)
		}
	}
	// A segment with splits adds each row's group (splits.go), so the
	// destination can hold out the holdout.
	groups, err := c.rowGroups(set.Get(name).Definition(), res.Rows)
	if err != nil {
		return rep, err
	}
	if groups != nil && len(res.Rows) > 0 {
		rep.Fields = append(rep.Fields, splitField)
	}
	// The ledger first: a crash while the rows go out leaves it naming
	// every person of the export, so it may list a recipient that got
	// nothing, never miss one that got something. A delivery that fails
	// takes back the entries of the rows nobody received.
	meter.stage("ledger", len(res.Rows))
	if c.beforeLedger != nil {
		c.beforeLedger()
	}
	if err := c.writeLedger(ctx, res.Rows, ledgerEntry{Export: id, Segment: name, Destination: destination, Kind: dc.Kind, At: now.UTC(), Fields: rep.Fields}); err != nil {
		return rep, errors.Join(err, c.unwriteLedger(context.WithoutCancel(ctx), res.Rows, id))
	}
	ledgered()
	meter.stage("writing", len(res.Rows))
	held := 0
	if dc.URL != "" {
		rep.Path = dc.URL
		held, err = c.sendWebhook(ctx, dc, id, name, destination, res.Rows, groups, meter)
	} else {
		rep.Path, err = writeExport(dc, name, destination, now, rep.Fields, res.Rows, groups, meter)
		switch {
		case err == nil:
			held = len(res.Rows)
		case errors.Is(err, errFileLeft):
			held = len(res.Rows) // whoever reads the directory may have it
		default:
			rep.Path = ""
		}
	}
	if err != nil {
		return rep, errors.Join(err, c.unwriteLedger(context.WithoutCancel(ctx), res.Rows[held:], id))
	}
	c.markUsed(ctx, name, useExported)
	err = c.record(ctx, "segment.export", map[string]any{"export": id, "segment": name, "destination": destination,
		"purpose": purpose, "destination_purpose": dc.Purpose, "preset": dc.Preset, "rows": rep.Rows, "fields": rep.Fields, "not_consented": rep.NotConsented,
		"export_denied": rep.ExportDenied, "bundle_hash": c.engine.BundleHash()})
	if err == nil {
		meter.stage("done", len(res.Rows))
	}
	return rep, err
}

// splitField is the export column holding a row's group of the segment's
// splits.
const splitField = "split"

// rowValue is the value of a row's field; groups (nil without splits)
// gives the split column.
func rowValue(r segments.Row, i int, name string, groups []string) (any, bool) {
	if name == splitField && groups != nil {
		return groups[i], true
	}
	return r.Value(name)
}

// writeExport writes the rows to a new file in the destination's
// directory. A file it could not finish is removed: nobody received it.
func writeExport(dc DestinationConfig, segment, dest string, now time.Time, fields []string, rows []segments.Row, groups []string, meter *progressMeter) (_ string, err error) {
	if err := os.MkdirAll(dc.Dir, 0o700); err != nil {
		return "", fmt.Errorf("export directory: %w", err)
	}
	// Names have a one-second resolution; a second export of the same
	// segment to the same destination within that second gets -2, -3, ...
	// rather than failing (never overwriting an earlier export).
	stamp := now.UTC().Format("20060102T150405Z")
	path := filepath.Join(dc.Dir, fmt.Sprintf("%s-%s-%s.%s", segment, dest, stamp, dc.Format))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	for n := 2; errors.Is(err, os.ErrExist) && n <= 1000; n++ {
		path = filepath.Join(dc.Dir, fmt.Sprintf("%s-%s-%s-%d.%s", segment, dest, stamp, n, dc.Format))
		f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	}
	if err != nil {
		return "", fmt.Errorf("export file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if rerr := os.Remove(path); rerr != nil {
				err = fmt.Errorf("%w (%w): %w", err, errFileLeft, rerr)
			}
		}
	}()
	switch dc.Format {
	case "csv":
		w := csv.NewWriter(f)
		if err := w.Write(fields); err != nil {
			return "", err
		}
		for ri, r := range rows {
			rec := make([]string, len(fields))
			for i, name := range fields {
				if v, ok := rowValue(r, ri, name, groups); ok && v != nil {
					rec[i] = fmt.Sprint(v)
				}
			}
			if err := w.Write(rec); err != nil {
				return "", err
			}
			meter.rows(1)
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return "", err
		}
	default:
		enc := json.NewEncoder(f)
		for ri, r := range rows {
			obj := map[string]any{}
			for _, fl := range r.Fields() {
				obj[fl.Name] = fl.Value
			}
			if groups != nil {
				obj[splitField] = groups[ri]
			}
			if err := enc.Encode(obj); err != nil {
				return "", err
			}
			meter.rows(1)
		}
	}
	return path, f.Sync()
}

// errFileLeft: an export file that failed could not be removed either.
var errFileLeft = errors.New("the unfinished file is left in the destination directory")

// unwriteLedger deletes the ledger entries of an export for rows that
// never went out.
func (c *CDP) unwriteLedger(ctx context.Context, rows []segments.Row, export string) error {
	done, err := c.eachLedgerKey(ctx, rows, export, 5000, func(tx *store.Txn, _ uuid.UUID, key []byte) error {
		return tx.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("export ledger: take back %d entries: %w", len(rows)-done, err)
	}
	return nil
}

func (c *CDP) writeLedger(ctx context.Context, rows []segments.Row, e ledgerEntry) error {
	plain, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = c.eachLedgerKey(ctx, rows, e.Export, 2000, func(tx *store.Txn, pid uuid.UUID, key []byte) error {
		sealed, err := c.vault.Seal(ctx, pid, key, plain)
		if err != nil {
			return err
		}
		return tx.Set(key, sealed)
	})
	if err != nil {
		return fmt.Errorf("export ledger: %w", err)
	}
	return nil
}

// eachLedgerKey runs fn on the ledger key of export for each row's
// person, per rows at a time in one transaction each. done is how many
// rows' transactions committed.
func (c *CDP) eachLedgerKey(ctx context.Context, rows []segments.Row, export string, per int, fn func(tx *store.Txn, pid uuid.UUID, key []byte) error) (done int, err error) {
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		err := c.store.Update(ctx, func(tx *store.Txn) error {
			for _, r := range chunk {
				pid, err := uuid.Parse(r.Ref())
				if err != nil {
					return err
				}
				if err := fn(tx, pid, store.ExportKey(pid, export)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return start, err
		}
	}
	return len(rows), nil
}

// Field gives an export field's value (segments.FieldSource). Hashed
// identifiers are SHA-256 of the normalised value, as ad platforms expect.
func (p *personView) Field(name string) (any, bool) {
	str := func(k string) string {
		v, _ := p.Trait(k)
		s, _ := v.(string)
		return s
	}
	switch name {
	case "email":
		if e := str("email"); e != "" {
			return e, true
		}
	case "first_name", "last_name", "country", "tier", "plan", "locale":
		if v, ok := p.Trait(name); ok {
			return v, true
		}
	case "lifecycle_stage", "last_order_at":
		// Custody's own computed traits (segments.ComputedTraits): the
		// stage by its documented rules, the time as RFC 3339.
		if v, ok := p.ComputedText(name); ok {
			return v, true
		}
	case "email_sha256":
		if e, err := identity.Normalize(identity.Email, str("email")); err == nil {
			sum := sha256.Sum256([]byte(e))
			return hex.EncodeToString(sum[:]), true
		}
	case "phone_sha256":
		if ph := identity.NormalizePhone(str("phone"), p.c.rules.DefaultRegion); ph != "" {
			sum := sha256.Sum256([]byte(ph))
			return hex.EncodeToString(sum[:]), true
		}
	case "consent_at":
		if cv, err := p.consent(); err == nil {
			if st, ok := cv.States[p.purpose]; ok {
				return st.Record.CollectedAt.Format(time.RFC3339), true
			}
		}
	case "order_count":
		if v, ok := p.Computed(name); ok {
			return v, true
		}
	}
	return nil, false
}
