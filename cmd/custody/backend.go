package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/urfave/cli/v2"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/server"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/privacy"
	"github.com/custody-cdp/custody/segments"
)

// backend is what commands need; core.CDP serves it directly, and
// server.Client serves it through a running `custody serve`.
type backend interface {
	Import(ctx context.Context, r io.Reader, opts core.ImportOptions) (core.ImportReport, error)
	Profile(ctx context.Context, id identity.Identifier, so core.ShowOptions) (*core.ProfileView, error)
	CreateAPIKey(ctx context.Context, role core.Role, name string) (core.NewAPIKey, error)
	RotateKeys(ctx context.Context) (keys.RotateReport, error)
	Unmerge(ctx context.Context, pid uuid.UUID, reason string) (core.UnmergeResult, error)
	Stats(ctx context.Context) (core.Stats, error)
	RecordConsent(ctx context.Context, req core.ConsentRequest) (privacy.Consent, error)
	Consent(ctx context.Context, id identity.Identifier) (core.ConsentView, error)
	Reach(ctx context.Context, purposes []string) ([]core.ReachReport, error)
	AuditVerify(ctx context.Context) (audit.VerifyReport, error)
	AuditTail(ctx context.Context, n int) ([]audit.Entry, error)
	ApplySegmentData(ctx context.Context, data []byte) (*segments.Definition, error)
	ApplyTemplate(ctx context.Context, name string, params map[string]string) (*segments.Definition, error)
	Segments(ctx context.Context) ([]*segments.Definition, error)
	SegmentHygiene(ctx context.Context, now time.Time) ([]core.SegmentHealth, error)
	EvaluateSegment(ctx context.Context, name string, now time.Time) (core.SegmentEval, error)
	ExportSegment(ctx context.Context, name, destination string, now time.Time, opts ...core.ExportOption) (core.ExportReport, error)
	RefreshSegment(ctx context.Context, name string, now time.Time) (core.RefreshReport, error)
	DeleteSegment(ctx context.Context, name string) error
	ShowSegment(ctx context.Context, name string) (core.SegmentShow, error)
	SegmentReport(ctx context.Context, name string, since, until time.Time) (core.SegmentReport, error)
	HandleRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*core.PrivacyRequest, *core.AccessReport, error)
	Requests(ctx context.Context, overdue bool) ([]*core.PrivacyRequest, error)
	ExtendRequest(ctx context.Context, id, reason string) (*core.PrivacyRequest, error)
	Request(ctx context.Context, id string) (*core.PrivacyRequest, error)
	ReceiveRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*core.PrivacyRequest, error)
	VerifyRequest(ctx context.Context, id, method string) (*core.PrivacyRequest, *core.AccessReport, error)
	RejectRequest(ctx context.Context, id, reason string) (*core.PrivacyRequest, error)
	Backup(ctx context.Context, w io.Writer) (store.BackupInfo, error)
	BackupVault(ctx context.Context, w io.Writer) (store.BackupInfo, error)
	Close() error
}

// openBackend reaches the data directory: through the running server's
// socket if one answers, otherwise by opening the store directly.
func openBackend(c *cli.Context) (backend, core.Config, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, cfg, err
	}
	if _, err := os.Stat(cfg.SocketPath()); err == nil {
		if cl, err := server.Dial(c.Context, cfg.SocketPath()); err == nil {
			return cl, cfg, nil
		}
	}
	cdp, err := core.Open(c.Context, cfg, core.Options{Logger: newLogger(cfg, c.App.ErrWriter)})
	if errors.Is(err, core.ErrLocked) {
		return nil, cfg, fmt.Errorf("%w; and no server answers on %s", err, cfg.SocketPath())
	}
	if err != nil {
		return nil, cfg, err
	}
	return cdp, cfg, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// withBackend is the shape of most commands: reach the data directory,
// make one call, print the result as JSON (--json) or as text.
func withBackend[T any](c *cli.Context, call func(b backend) (T, error), text func(w io.Writer, v T)) error {
	b, _, err := openBackend(c)
	if err != nil {
		return err
	}
	defer b.Close()
	v, err := call(b)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, v)
	}
	text(c.App.Writer, v)
	return nil
}
