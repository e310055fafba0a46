package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchBatch builds a /v1/batch body of n realistic e-commerce messages as
// @segment/analytics-node sends them (messages of roughly 400–700 bytes).
func benchBatch(tb testing.TB, n int) (body []byte, avg int) {
	tb.Helper()
	base := time.Date(2024, 5, 1, 11, 59, 0, 0, time.UTC)
	lib := map[string]any{"library": map[string]any{"name": "@segment/analytics-node", "version": "2.1.2"}}
	items := make([]json.RawMessage, 0, n)
	total := 0
	for i := range n {
		userID := fmt.Sprintf("user-%06d", i%37)
		m := map[string]any{
			"_metadata":    map[string]any{"jsRuntime": "node", "nodeVersion": "20.11.1"},
			"context":      lib,
			"integrations": map[string]any{},
			"messageId":    fmt.Sprintf("node-next-%d-%08x-4b1e-9c2f-%012x", base.UnixMilli()+int64(i), i*7919, i*104729),
			"timestamp":    base.Add(time.Duration(i) * 137 * time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00"),
			"userId":       userID,
		}
		switch i % 5 {
		case 0, 1:
			m["type"] = "track"
			m["event"] = "Product Viewed"
			m["properties"] = map[string]any{
				"product_id": fmt.Sprintf("507f1f77bcf86cd7994%05d", i), "sku": fmt.Sprintf("G-%05d", i),
				"category": "Games", "name": "Monopoly: 3rd Edition", "brand": "Hasbro", "variant": "200 pieces",
				"price": 18.99, "quantity": 1, "currency": "USD", "position": 3,
				"url": "https://www.example-shop.com/product/path", "image_url": "https://www.example-shop.com/product/path.jpg",
			}
		case 2:
			m["type"] = "track"
			m["event"] = "Order Completed"
			m["properties"] = map[string]any{
				"checkout_id": "fksdjfsdjfisjf9sdfjsd9f", "order_id": fmt.Sprintf("50314b8e9bcf%06d", i),
				"affiliation": "Google Store", "total": 27.50, "subtotal": 22.50, "revenue": 25.00, "shipping": 3, "tax": 2,
				"discount": 2.5, "coupon": "hasbros", "currency": "USD",
				"products": []any{
					map[string]any{"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "name": "Monopoly: 3rd Edition", "price": 19, "quantity": 1},
					map[string]any{"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "name": "Uno Card Game", "price": 3, "quantity": 2},
				},
			}
		case 3:
			m["type"] = "identify"
			m["traits"] = map[string]any{
				"email": fmt.Sprintf("customer%d@example.com", i), "firstName": "Jane", "lastName": "Doe",
				"plan": "premium", "logins": 5, "createdAt": "2023-01-02T03:04:05Z",
				"address": map[string]any{"city": "Lyon", "country": "FR", "postalCode": "69001"},
			}
		case 4:
			m["type"] = "page"
			m["anonymousId"] = fmt.Sprintf("a1b2c3d4-%04d-4e5f-8a9b-0c1d2e3f4a5b", i)
			delete(m, "userId")
			m["name"] = "Product Detail"
			m["category"] = "Catalog"
			m["properties"] = map[string]any{
				"path": "/products/monopoly", "referrer": "https://www.google.com/", "search": "?utm_source=google",
				"title": "Monopoly: 3rd Edition – Example Shop", "url": "https://www.example-shop.com/products/monopoly?utm_source=google",
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		if len(b) < 350 || len(b) > 800 {
			tb.Fatalf("message %d is %d bytes, want ~400-700", i, len(b))
		}
		total += len(b)
		items = append(items, b)
	}
	body, err := json.Marshal(map[string]any{"batch": items, "sentAt": base.Add(30 * time.Second).Format(time.RFC3339Nano)})
	if err != nil {
		tb.Fatal(err)
	}
	return body, total / n
}

// BenchmarkDecodeBatch: DecodeBatch (the fast path, for this SDK-shaped
// body) against the general encoding/json path in the same run.
func BenchmarkDecodeBatch(b *testing.B) {
	for _, c := range []struct {
		name   string
		decode func([]byte, time.Time) ([]Message, error)
	}{{"fast", DecodeBatch}, {"general", decodeBatchGeneral}} {
		b.Run(c.name, func(b *testing.B) {
			body, avg := benchBatch(b, 100)
			if _, ok := fastBatch(body, testNow); !ok {
				b.Fatal("benchmark body does not take the fast path")
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.decode(body, testNow); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(avg), "B/msg")
			b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	body, _ := benchBatch(b, 1)
	var env struct{ Batch []json.RawMessage }
	if err := json.Unmarshal(body, &env); err != nil {
		b.Fatal(err)
	}
	msg := env.Batch[0]
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMessage(msg, Track, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func benchMessages(b *testing.B) []Message {
	body, _ := benchBatch(b, 100)
	msgs, err := DecodeBatch(body, testNow)
	if err != nil {
		b.Fatal(err)
	}
	return msgs
}

func BenchmarkEncode(b *testing.B) {
	msgs := benchMessages(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range msgs {
			enc, _ := msgs[i].Encode()
			n += len(enc)
		}
	}
	b.SetBytes(int64(n / b.N))
	b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkDecodeStored(b *testing.B) {
	msgs := benchMessages(b)
	recs := make([][]byte, len(msgs))
	size := 0
	for i := range msgs {
		recs[i], _ = msgs[i].Encode()
		size += len(recs[i])
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range recs {
			if _, err := DecodeStored(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkTraitString(b *testing.B) {
	msgs := benchMessages(b)
	m := msgs[3] // identify
	if !strings.Contains(m.TraitString("email"), "@") {
		b.Fatal("no email trait")
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.TraitString("email")
	}
}
