package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/custody-cdp/custody/core"
)

// exportJob is an export started from the console. It runs in a goroutine
// the console owns (Close cancels and waits for it); the page polls its
// status. It holds counts only, as the export report does.
type exportJob struct {
	ID          string
	Segment     string
	Destination string
	keyID       string // only the key that started it sees it
	started     time.Time

	mu       sync.Mutex
	state    string // running, done, failed
	progress core.ExportProgress
	finished time.Time
	report   *core.ExportReport
	err      string
}

// exportStatus is the JSON the page polls.
type exportStatus struct {
	ID          string              `json:"id"`
	Segment     string              `json:"segment"`
	Destination string              `json:"destination"`
	State       string              `json:"state"`
	Started     time.Time           `json:"started"`
	Elapsed     float64             `json:"elapsed_seconds"`
	Progress    core.ExportProgress `json:"progress"`
	Report      *core.ExportReport  `json:"report,omitempty"`
	Error       string              `json:"error,omitempty"`
}

func (j *exportJob) done() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state != "running"
}

func (j *exportJob) status(now time.Time) exportStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	end := now
	if !j.finished.IsZero() {
		end = j.finished
	}
	return exportStatus{ID: j.ID, Segment: j.Segment, Destination: j.Destination, State: j.state, Started: j.started,
		Elapsed: end.Sub(j.started).Seconds(), Progress: j.progress, Report: j.report, Error: j.err}
}

func (c *Console) startExport(w http.ResponseWriter, r *http.Request, s *session) {
	name, dest := r.PathValue("name"), r.PostFormValue("destination")
	if _, ok := c.b.Config().Destinations[dest]; !ok {
		c.render(w, r, s, http.StatusBadRequest, "error", page{Title: "Bad request", Error: "Choose one of the configured destinations."})
		return
	}
	j := &exportJob{ID: randomToken()[:16], Segment: name, Destination: dest, keyID: s.keyID, started: c.now(), state: "running"}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	c.jobs[j.ID] = j
	c.wg.Add(1)
	c.mu.Unlock()
	// The export outlives the request: it runs under the console's
	// context, with the key as the audit actor.
	ctx := core.WithActor(c.ctx, "key-"+s.keyID)
	go func() {
		defer c.wg.Done()
		rep, err := c.b.ExportSegment(ctx, name, dest, time.Time{}, core.WithProgress(func(p core.ExportProgress) {
			j.mu.Lock()
			j.progress = p
			j.mu.Unlock()
		}))
		j.mu.Lock()
		defer j.mu.Unlock()
		j.finished = c.now()
		if err != nil {
			j.state = "failed"
			j.err = "the export failed"
			switch {
			case errorsIsAny(err, core.ErrSegmentNotFound):
				j.err = "no segment with that name"
			case errorsIsAny(err, core.ErrInvalidInput):
				j.err = err.Error()
			default:
				c.log.Error("console export", "segment", name, "destination", dest, "err", err)
			}
			return
		}
		j.state, j.report = "done", &rep
	}()
	http.Redirect(w, r, prefix+"/exports/"+j.ID, http.StatusSeeOther)
}

func (c *Console) job(r *http.Request, s *session) *exportJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.jobs[r.PathValue("id")]
	if j == nil || j.keyID != s.keyID {
		return nil
	}
	return j
}

func (c *Console) exportPage(w http.ResponseWriter, r *http.Request, s *session) {
	j := c.job(r, s)
	if j == nil {
		c.render(w, r, s, http.StatusNotFound, "error", page{Title: "Not found", Error: "No export with that id in this console."})
		return
	}
	st := j.status(c.now())
	c.render(w, r, s, http.StatusOK, "export", page{Title: "Export of " + st.Segment, Data: st})
}

func (c *Console) exportStatus(w http.ResponseWriter, r *http.Request, s *session) {
	j := c.job(r, s)
	if j == nil {
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(j.status(c.now()))
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
