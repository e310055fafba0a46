package segments

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestTemplatesGolden evaluates every template (default parameters) over
// 400 generated people at a fixed clock and compares the members with
// testdata/<template>.golden. Run with -update to rewrite them.
func TestTemplatesGolden(t *testing.T) {
	people := genPeople(400, 42, clock)
	var defs []*Definition
	for _, tp := range Templates() {
		defs = append(defs, tp.Definition)
	}
	set, err := NewSet(KnownNames{}, defs...)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), set, peopleOf(people), allowAll(), clock)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range Templates() {
		t.Run(tp.Name, func(t *testing.T) {
			sr := res.Segment(tp.Name)
			c := set.Get(tp.Name)
			canon, _ := c.MarshalJSON()
			var b bytes.Buffer
			fmt.Fprintf(&b, "# %s\n# time_sensitive: %v, population: %v\n# members: %d of %d\n", canon, c.TimeSensitive(), c.NeedsPopulation(), len(sr.Members), len(people))
			for i, m := range sr.Members {
				b.WriteString(m.Ref())
				if i%10 == 9 || i == len(sr.Members)-1 {
					b.WriteByte('\n')
				} else {
					b.WriteByte(' ')
				}
			}
			path := filepath.Join("testdata", tp.Name+".golden")
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("members differ from %s (run go test -update and review the diff):\n got:\n%s\nwant:\n%s", path, b.Bytes(), want)
			}
			// Every template selects some but not all people of the sample.
			if n := len(sr.Members); n == 0 || n == len(people) {
				t.Errorf("%d members of %d: the sample does not exercise the template", n, len(people))
			}
		})
	}
}

// TestTemplatesAgainstOracle checks a few templates' members against a
// direct computation over the generated people.
func TestTemplatesAgainstOracle(t *testing.T) {
	people := genPeople(400, 42, clock)
	day := 24 * 3600.0
	orders := func(p *fakePerson) []Event { return p.events["Order Completed"] }
	within := func(evs []Event, days float64) int {
		n := 0
		for _, e := range evs {
			age := clock.Sub(e.Time).Seconds()
			if age >= 0 && age < days*day {
				n++
			}
		}
		return n
	}
	past := func(evs []Event) int { return within(evs, 1e9) }
	oracles := map[string]func(p *fakePerson) bool{
		"cart_abandoners": func(p *fakePerson) bool {
			return within(p.events["Product Added"], 3) > 0 && within(orders(p), 3) == 0
		},
		"first_time_buyers": func(p *fakePerson) bool { return past(orders(p)) == 1 },
		"repeat_buyers":     func(p *fakePerson) bool { return past(orders(p)) >= 2 },
		"at_risk":           func(p *fakePerson) bool { return past(orders(p)) > 0 && within(orders(p), 90) == 0 },
		"discount_only_buyers": func(p *fakePerson) bool {
			if past(orders(p)) == 0 {
				return false
			}
			for _, o := range orders(p) {
				if o.Time.After(clock) {
					continue
				}
				c, _ := o.Properties["coupon"].(string)
				d, _ := o.Properties["discount"].(float64)
				if c == "" && d <= 0 {
					return false
				}
			}
			return true
		},
		"by_country": func(p *fakePerson) bool {
			a, _ := p.traits["address"].(map[string]any)
			return a != nil && a["country"] == "DE"
		},
	}
	for name, oracle := range oracles {
		c, err := Compile(template(t, name).Definition, KnownNames{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, cand := range people {
			want := oracle(cand.Person.(*fakePerson))
			if got := c.Match(cand.Person, clock, Env{}); got != want {
				t.Errorf("%s: %s got %v, want %v", name, cand.Ref, got, want)
			}
			if want {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s: no member in the sample", name)
		}
	}
}

func template(t testing.TB, name string) Template {
	t.Helper()
	for _, tp := range Templates() {
		if tp.Name == name {
			return tp
		}
	}
	t.Fatalf("no template %q", name)
	return Template{}
}

func TestTemplates(t *testing.T) {
	seen := map[string]bool{}
	for _, tp := range Templates() {
		if seen[tp.Name] || !validName(tp.Name) || tp.Definition.Name != tp.Name || tp.Description == "" {
			t.Errorf("template %q: bad or duplicate name or description", tp.Name)
		}
		seen[tp.Name] = true
		if _, err := Compile(tp.Definition, KnownNames{}); err != nil {
			t.Errorf("%s: %v", tp.Name, err)
		}
		hasPurpose := false
		for _, p := range tp.Params {
			hasPurpose = hasPurpose || p.Name == "purpose"
			if _, msg := renderParam(p.Kind, p.Default); msg != "" {
				t.Errorf("%s: default of %s: %s", tp.Name, p.Name, msg)
			}
		}
		if !hasPurpose {
			t.Errorf("%s: no purpose parameter", tp.Name)
		}
		if strings.Contains(string(must(tp.Definition.MarshalJSON())), "{{") {
			t.Errorf("%s: unreplaced placeholder", tp.Name)
		}
	}
	for _, want := range []string{"new_visitors", "browsers_without_purchase", "cart_abandoners", "high_intent_shoppers", "first_time_buyers", "repeat_buyers", "vip", "discount_only_buyers", "at_risk", "lapsed", "champions", "loyal", "at_risk_rfm", "hibernating", "by_country", "by_region"} {
		if !seen[want] {
			t.Errorf("missing template %s", want)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestTemplateParams(t *testing.T) {
	d, err := template(t, "cart_abandoners").With(map[string]string{"days": "7", "purpose": "marketing.communications.sms"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Purpose != "marketing.communications.sms" || d.Where.All[0].Event.Within.String() != "7d" || d.Where.All[1].Not.Event.Within.String() != "7d" {
		t.Errorf("parameters not applied: %s", must(d.MarshalJSON()))
	}
	d, err = template(t, "by_country").With(map[string]string{"countries": "de, at ,ch"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(must(d.MarshalJSON())); !strings.Contains(got, `"in":["DE","AT","CH"]`) {
		t.Errorf("countries: %s", got)
	}
	d, err = template(t, "vip").With(map[string]string{"percent": "2.5"})
	if err != nil || d.Where.Top.Percent != 2.5 {
		t.Errorf("percent: %v %v", d, err)
	}
	_, err = template(t, "by_region").With(map[string]string{"country": "USA", "regions": `CA,"NY`, "colour": "red"})
	var list ErrorList
	if !errorsAs(err, &list) || len(list) != 3 {
		t.Fatalf("got %v", err)
	}
	for i, want := range []string{"params.colour", "params.country", "params.regions"} {
		if list[i].Path != want || list[i].Err != ErrInvalidParam {
			t.Errorf("error %d: %v, want at %s", i, list[i], want)
		}
	}
	for _, bad := range []map[string]string{{"days": "0"}, {"days": "3651"}, {"days": "3d"}, {"purpose": "Not Valid"}} {
		if _, err := template(t, "lapsed").With(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := template(t, "vip").With(map[string]string{"percent": "0"}); err == nil {
		t.Error("percent 0 accepted")
	}
}
