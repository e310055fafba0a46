package demo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
)

func TestRespond(t *testing.T) {
	opts := testOptions(20000)
	c := Campaign{Sent: testNow.AddDate(0, 0, -30), Until: testNow, BaseRate: 0.05, Lift: 0.15}
	var rs []Recipient
	for i := 0; i < 20000; i++ {
		rs = append(rs, Recipient{Index: i, Holdout: i%5 == 0})
	}
	var a, b bytes.Buffer
	st, err := Respond(&a, opts, c, rs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Respond(&b, opts, c, rs); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("Respond is not deterministic")
	}
	if st.Treated != 16000 || st.HeldOut != 4000 {
		t.Fatalf("stats %+v", st)
	}
	// Rates within five standard deviations of what was asked.
	within := func(what string, got, n int, p float64) {
		t.Helper()
		mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
		if math.Abs(float64(got)-mean) > 5*sd {
			t.Errorf("%s: %d of %d, want %.0f ± %.0f", what, got, n, mean, 5*sd)
		}
	}
	within("held-out orders", st.HeldOutOrders, st.HeldOut, 0.05)
	within("treated orders", st.TreatedOrders, st.Treated, 0.05+0.95*0.15)
	sc := bufio.NewScanner(&a)
	var last time.Time
	n, coupons := 0, 0
	for sc.Scan() {
		var m struct {
			Type, Event, UserID string
			Timestamp           time.Time
			Properties          struct {
				Total, Revenue, Tax, Shipping float64
				Coupon, Currency              string
				Products                      []map[string]any
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		if m.Type != "track" || m.Event != "Order Completed" || m.UserID == "" || len(m.Properties.Products) == 0 || m.Properties.Currency == "" {
			t.Fatalf("message %s", sc.Bytes())
		}
		if !m.Timestamp.After(c.Sent) || m.Timestamp.After(c.Until) || m.Timestamp.Before(last) {
			t.Fatalf("timestamp %s out of the window or order", m.Timestamp)
		}
		if math.Abs(m.Properties.Revenue+m.Properties.Tax+m.Properties.Shipping-m.Properties.Total) > 0.005 {
			t.Fatalf("totals %s", sc.Bytes())
		}
		if m.Properties.Coupon != "" {
			coupons++
		}
		last = m.Timestamp
		n++
	}
	if n != st.HeldOutOrders+st.TreatedOrders || coupons != st.Responses {
		t.Fatalf("%d messages, %d coupons; stats %+v", n, coupons, st)
	}
	// The user id is the persona's.
	var one bytes.Buffer
	if _, err := Respond(&one, opts, Campaign{Sent: c.Sent, Until: c.Until, BaseRate: 1}, []Recipient{{Index: 7}}); err != nil ||
		!bytes.Contains(one.Bytes(), []byte(`"userId":"`+Person(opts, 7).UserID+`"`)) {
		t.Fatalf("%v %s", err, one.Bytes())
	}
	if _, err := Respond(&one, opts, Campaign{Sent: c.Until, Until: c.Sent}, rs); !errors.Is(err, ErrCampaign) {
		t.Fatalf("empty window: %v", err)
	}
}
