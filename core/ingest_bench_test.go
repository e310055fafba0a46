package core

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"

	"github.com/custody-cdp/custody/core/event"
)

// BenchmarkIngest measures the committer path (prepare, resolve, seal,
// durable commit) for batches of 100 messages from 16 concurrent callers.
//
//   - baseline: every message carries one user id (exact-match lookup,
//     no identity evidence), the foundation's path;
//   - stitching: 30% of messages pair a known user id with a known device
//     (a lookup of existing identifiers), 2% link a new device or email to
//     a known user (a merge), the rest are single-identifier events.
//
// Report the ratio stitching/baseline (make bench prints it).
func BenchmarkIngest(b *testing.B) {
	for _, mode := range []string{"baseline", "stitching"} {
		b.Run(mode, func(b *testing.B) { benchIngest(b, mode) })
	}
}

func benchIngest(b *testing.B, mode string) {
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
	const users = 20000
	rng := rand.New(rand.NewSource(1))
	props := `"properties":{"product_id":"p-%d","sku":"SKU-%d","name":"Ceramic mug with a long descriptive name","price":12.5,"currency":"EUR","category":"Kitchen"},"context":{"ip":"203.0.113.9","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","locale":"en-GB","page":{"path":"/p/mug","url":"https://shop.example.com/p/mug"}},"timestamp":"2026-10-01T10:%02d:%02dZ"`
	mk := func(i int) event.Message {
		u := rng.Intn(users)
		var ids string
		switch r := rng.Intn(100); {
		case mode == "baseline" || r >= 32:
			ids = fmt.Sprintf(`"userId":"user-%d"`, u)
		case r < 30:
			ids = fmt.Sprintf(`"userId":"user-%d","anonymousId":"dev-%d"`, u, u)
		default:
			ids = fmt.Sprintf(`"userId":"user-%d","anonymousId":"dev-%d-%d"`, u, u, i)
		}
		body := fmt.Sprintf(`{"type":"track","messageId":"m-%d",%s,"event":"Product Viewed",`+props+`}`, i, ids, i%500, i%500, (i/60)%60, i%60)
		m, err := event.DecodeMessage([]byte(body), "", fixedNow)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	// Every user and device exists before the clock starts, so lookups hit
	// existing identifiers as the stream describes.
	var warm []event.Message
	for u := 0; u < users; u++ {
		body := fmt.Sprintf(`{"type":"identify","messageId":"w-%d","userId":"user-%d","anonymousId":"dev-%d","timestamp":"2026-09-01T00:00:00Z"}`, u, u, u)
		if mode == "baseline" {
			body = fmt.Sprintf(`{"type":"identify","messageId":"w-%d","userId":"user-%d","timestamp":"2026-09-01T00:00:00Z"}`, u, u)
		}
		m, _ := event.DecodeMessage([]byte(body), "", fixedNow)
		warm = append(warm, m)
		if len(warm) == 1000 {
			if _, err := c.Ingest(ctx, warm); err != nil {
				b.Fatal(err)
			}
			warm = nil
		}
	}
	const batch = 100
	n := max(b.N, batch)
	batches := make([][]event.Message, (n+batch-1)/batch)
	for i := range batches {
		for j := 0; j < batch; j++ {
			batches[i] = append(batches[i], mk(i*batch+j))
		}
	}
	next := make(chan []event.Message, len(batches))
	for _, bt := range batches {
		next <- bt
	}
	close(next)
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bt := range next {
				if _, err := c.Ingest(ctx, bt); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(len(batches)*batch)/b.Elapsed().Seconds(), "msgs/s")
}
