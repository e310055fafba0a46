package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core"
)

// The report over real HTTP: marketer and admin keys get it, every other
// role is refused, bad periods and unknown segments get clear errors, and
// the body holds counts only.
func TestSegmentReportEndpoint(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 6; i++ {
		batch := fmt.Sprintf(`{"batch":[
			{"type":"identify","messageId":"i%d","userId":"r%d","traits":{"email":"r%d@example.com","address":{"country":"US","state":"CA"}},"timestamp":"2026-09-01T00:00:00Z"},
			{"type":"track","messageId":"o%d","userId":"r%d","event":"Order Completed","properties":{"revenue":%d},"timestamp":"2026-10-0%dT10:00:00Z"}]}`, i, i, i, i, i, 10*i, i)
		if code, eb := e.post(t, "/v1/batch", e.keys[core.RoleIngest], []byte(batch), nil); code != 200 {
			t.Fatalf("ingest: %d %+v", code, eb)
		}
	}
	def := `{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"},"splits":{"treatment":80,"holdout":20}}`
	if code, b := e.adminDo(t, http.MethodPost, "/v1/admin/segments", core.RoleMarketer, def); code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, b)
	}
	if code, b := e.adminDo(t, http.MethodPost, "/v1/admin/segments/buyers/refresh?now=2026-09-30T00:00:00Z", core.RoleMarketer, ""); code != 200 {
		t.Fatalf("refresh: %d %s", code, b)
	}
	if code, b := e.adminDo(t, http.MethodPost, "/v1/admin/segments/buyers/refresh?now=2026-10-10T00:00:00Z", core.RoleMarketer, ""); code != 200 {
		t.Fatalf("refresh: %d %s", code, b)
	}
	path := "/v1/admin/segments/buyers/report?since=2026-10-01&until=2026-10-31"
	var first core.SegmentReport
	for _, role := range []core.Role{core.RoleMarketer, core.RoleAdmin} {
		code, b := e.adminDo(t, http.MethodGet, path, role, "")
		if code != 200 {
			t.Fatalf("%s: %d %s", role, code, b)
		}
		var rep core.SegmentReport
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		// Everyone entered on 2026-10-10 (nobody had ordered by the 30th).
		if rep.People != 6 || rep.Members.People != 6 || rep.Members.Orders != 6 || rep.Members.Revenue != 210 ||
			!rep.Since.Equal(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)) || !rep.Until.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) ||
			rep.Splits == nil || rep.Splits.Groups["treatment"].People+rep.Splits.Groups["holdout"].People != 6 || len(rep.Days) != 31 || rep.Days[9].Entered != 6 {
			t.Fatalf("%s: %s", role, b)
		}
		if strings.Contains(string(b), "@example.com") || strings.Contains(string(b), `"r1"`) {
			t.Fatalf("the report names someone: %s", b)
		}
		first = rep
	}
	for _, role := range []core.Role{core.RoleIngest, core.RoleDPO, core.RolePersonalize} {
		if code, b := e.adminDo(t, http.MethodGet, path, role, ""); code != http.StatusForbidden {
			t.Fatalf("%s: %d %s", role, code, b)
		}
	}
	if code, _ := e.adminDo(t, http.MethodGet, path, "", ""); code != http.StatusUnauthorized {
		t.Fatalf("no key: %d", code)
	}
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/v1/admin/segments/buyers/report?since=last+week", 400, `since: invalid input: \"last week\" is neither a date`},
		{"/v1/admin/segments/buyers/report?until=2026-13-01", 400, "until: invalid input"},
		{"/v1/admin/segments/buyers/report?since=2026-10-02&until=2026-10-01", 400, "must be before its end"},
		{"/v1/admin/segments/nobody/report", 404, "segment not found"},
	} {
		code, b := e.adminDo(t, http.MethodGet, tc.path, core.RoleMarketer, "")
		if code != tc.code || !strings.Contains(string(b), tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", tc.path, code, b, tc.code, tc.msg)
		}
	}

	// Through the admin socket, as the CLI calls it while serve runs.
	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(t.TempDir(), "admin.sock")
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- e.server.Serve(ctx, "127.0.0.1:0", sock, func(string) { close(ready) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-ready
	cl, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rep, err := cl.SegmentReport(ctx, "buyers", first.Since, first.Until)
	if err != nil {
		t.Fatal(err)
	}
	rep.GeneratedAt = first.GeneratedAt
	if !reflect.DeepEqual(rep.Members, first.Members) || !reflect.DeepEqual(rep.Splits, first.Splits) || !reflect.DeepEqual(rep.Days, first.Days) {
		t.Fatalf("through the socket:\n%+v\nover HTTP:\n%+v", rep, first)
	}
}
