package core

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/custody-cdp/custody/segments"
)

// webhookAttempts bounds the tries of one batch (backoff 0.2 s, doubling).
const webhookAttempts = 5

// sendWebhook POSTs the rows in batches: {"export", "segment",
// "destination", "batch", "rows": [{field: value}]}, signed with
// HMAC-SHA256 of the body under the destination's secret (rows of a
// segment with splits carry "split": the person's group), retried with
// exponential backoff on network errors, 429 and 5xx. A 4xx other than 429
// fails the export at once (the receiver refuses the data).
// held is how many rows, from the first, the receiver may hold: those of
// the batches it accepted, and of the one that failed unless it refused
// it (a batch that timed out or got a 5xx may have been kept). The export
// keeps their ledger entries (ExportSegment).
func (c *CDP) sendWebhook(ctx context.Context, dc DestinationConfig, exportID, segment, dest string, rows []segments.Row, groups []string, meter *progressMeter) (held int, err error) {
	secret := os.Getenv(dc.SecretEnv)
	if secret == "" { // checked by CDP.destination, before the ledger
		return 0, fmt.Errorf("%w: destination %s: environment variable %s (its signing secret) is empty", ErrInvalidInput, dest, dc.SecretEnv)
	}
	size := dc.BatchSize
	if size <= 0 {
		size = 500
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for batch, start := 0, 0; start < len(rows); batch, start = batch+1, start+size {
		chunk := rows[start:min(start+size, len(rows))]
		objs := make([]map[string]any, 0, len(chunk))
		for j, r := range chunk {
			o := map[string]any{}
			for _, f := range r.Fields() {
				o[f.Name] = f.Value
			}
			if groups != nil {
				o[splitField] = groups[start+j]
			}
			objs = append(objs, o)
		}
		body, err := json.Marshal(map[string]any{"export": exportID, "segment": segment, "destination": dest, "batch": batch, "rows": objs})
		if err != nil {
			return start, err
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if err := postWithRetry(ctx, client, dc.URL, body, sig, exportID, batch); err != nil {
			if !errors.Is(err, errRefused) {
				start += len(chunk)
			}
			return start, fmt.Errorf("webhook %s: batch %d: %w", dest, batch, err)
		}
		meter.rows(len(chunk))
	}
	return len(rows), nil
}

// errRefused: the receiver answered a batch with a 4xx other than 429.
var errRefused = errors.New("refused")

// postWithRetry posts one batch. Its error is errRefused only when the
// receiver refused the batch at the first attempt: a refusal after an
// attempt that timed out or got a 5xx (a 409 for the repeated
// Idempotency-Key) may mean the receiver kept the batch then.
func postWithRetry(ctx context.Context, client *http.Client, url string, body []byte, sig, exportID string, batch int) error {
	backoff := 200 * time.Millisecond
	var last error
	for attempt := 1; attempt <= webhookAttempts; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Custody-Signature", sig)
		// The same id on every retry lets the receiver drop duplicates.
		req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", exportID, batch))
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				return nil
			case resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
				if attempt > 1 {
					return fmt.Errorf("refused with HTTP %d after %v", resp.StatusCode, last)
				}
				return fmt.Errorf("%w with HTTP %d", errRefused, resp.StatusCode)
			}
			last = fmt.Errorf("HTTP %d", resp.StatusCode)
		} else {
			last = err
		}
		if attempt == webhookAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	return fmt.Errorf("gave up after %d attempts: %w", webhookAttempts, last)
}
