package core

import (
	"context"
	"fmt"
	"testing"

	"github.com/custody-cdp/custody/core/event"
)

// BenchmarkIngest measures the committer path (prepare, resolve, seal,
// durable commit) for batches of 100 messages over a pool of 10,000 users.
func BenchmarkIngest(b *testing.B) {
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
	mk := func(i int) event.Message {
		body := fmt.Sprintf(`{"type":"track","messageId":"m-%d","userId":"user-%d","anonymousId":"anon-%d","event":"Product Viewed","properties":{"product_id":"p-%d","sku":"SKU-%d","name":"Ceramic mug with a long descriptive name","price":12.5,"currency":"EUR","category":"Kitchen"},"context":{"ip":"203.0.113.9","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","locale":"en-GB","page":{"path":"/p/mug","url":"https://shop.example.com/p/mug"}},"timestamp":"2026-10-01T10:00:00Z"}`, i, i%10000, i%10000, i%500, i%500)
		m, err := event.DecodeMessage([]byte(body), "", fixedNow)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	const batch = 100
	batches := make([][]event.Message, (b.N+batch-1)/batch)
	for i := range batches {
		for j := 0; j < batch; j++ {
			batches[i] = append(batches[i], mk(i*batch+j))
		}
	}
	b.ResetTimer()
	b.SetParallelism(8)
	var next = make(chan []event.Message, len(batches))
	for _, bt := range batches {
		next <- bt
	}
	close(next)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
		}
	})
	done := make(chan struct{})
	for w := 0; w < 16; w++ {
		go func() {
			for bt := range next {
				if _, err := c.Ingest(ctx, bt); err != nil {
					b.Error(err)
				}
			}
			done <- struct{}{}
		}()
	}
	for w := 0; w < 16; w++ {
		<-done
	}
	b.StopTimer()
	b.ReportMetric(float64(len(batches)*batch)/b.Elapsed().Seconds(), "msgs/s")
}
