package core

import (
	"context"

	"github.com/custody-cdp/custody/core/audit"
)

type actorKey struct{}

// WithActor names who acts (key-<API key id>, "owner" for the admin socket or
// the CLI) for the audit log. Never a person's identifier.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "owner"
}

// record appends to the audit log. data holds counts, ids, hashes and
// purposes: never a plaintext identifier, name or free text from a person.
// A failure is logged and returned; callers that changed state already
// report it rather than undo.
func (c *CDP) record(ctx context.Context, kind string, data any) error {
	if _, err := c.audit.Append(ctx, kind, actorOf(ctx), data); err != nil {
		c.log.Error("audit append failed", "kind", kind, "err", err)
		return err
	}
	return nil
}

// AuditVerify checks the whole chain and the sealed head.
func (c *CDP) AuditVerify(ctx context.Context) (audit.VerifyReport, error) {
	return c.audit.Verify(ctx)
}

// AuditTail returns the last n entries, oldest first.
func (c *CDP) AuditTail(ctx context.Context, n int) ([]audit.Entry, error) {
	return c.audit.Tail(ctx, n)
}
