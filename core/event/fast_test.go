package event

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sameMessages compares what the fast and the general path decoded. Message
// ids generated for messages without one are random: they only have to be
// generated on both sides.
func sameMessages(t *testing.T, fast, general []Message) {
	t.Helper()
	if len(fast) != len(general) {
		t.Fatalf("fast path decoded %d messages, general path %d", len(fast), len(general))
	}
	for i := range fast {
		f, g := fast[i], general[i]
		if f.MessageID != g.MessageID && len(f.MessageID) == 36 && len(g.MessageID) == 36 {
			f.MessageID, g.MessageID = "", ""
		}
		if !reflect.DeepEqual(f, g) {
			t.Fatalf("message %d differs:\nfast    %+v\ngeneral %+v", i, f, g)
		}
	}
}

// FuzzFastBatch: whatever the fast path accepts, the general path (which
// owns validation) decodes to the same messages. The fast path may give up
// on anything; it may never accept what the general path rejects.
func FuzzFastBatch(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	for _, s := range fastCases {
		f.Add([]byte(s.body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if checkUTF8(data) != nil || len(data) > MaxBatchBytes {
			return
		}
		fast, ok := fastBatch(data, fuzzNow)
		general, err := decodeBatchGeneral(data, fuzzNow)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fast path accepted what the general path rejects: %v", err)
		}
		sameMessages(t, fast, general)
	})
}

// fastCases pin which bodies take the fast path: the shape SDKs send must
// (or the optimisation silently stops working), the rest must not.
var fastCases = []struct {
	name, body string
	fast       bool
}{
	{"sdk shape", `{"batch":[{"type":"track","userId":"u1","event":"E","properties":{"a":[1,2.5e3,-0.1,true,false,null,"x\"y"]},"timestamp":"2024-05-01T10:00:00Z"}],"sentAt":"2024-05-01T10:00:01Z","writeKey":"k"}`, true},
	{"whitespace everywhere", " {\n\"batch\" : [ {\"type\" : \"identify\" , \"anonymousId\" : \"a\" , \"traits\" : { \"email\" : \"x@y.test\" } } ] ,\t\"context\" : {\"ip\":\"1.2.3.4\"} } \n", true},
	{"null fields", `{"batch":[{"type":"track","userId":"u","event":"E","traits":null,"name":null,"sentAt":null}],"sentAt":null,"context":null}`, true},
	{"duplicate keys last wins", `{"batch":[{"type":"track","userId":"a","userId":"b","event":"E","properties":{"x":1},"properties":{"y":2}}]}`, true},
	{"unknown keys skipped", `{"batch":[{"type":"page","userId":"u","_metadata":{"nested":[{"deep":{}}]},"receivedAt":"x"}],"extra":[1,{"a":null}]}`, true},
	{"escaped id", `{"batch":[{"type":"track","userId":"u\u0031","event":"E"}]}`, false},
	{"escaped key", `{"batch":[{"type":"track","user\u0049d":"u","event":"E"}]}`, false},
	{"case-folded key", `{"batch":[{"type":"track","UserId":"u","event":"E"}]}`, false},
	{"case-folded envelope key", `{"Batch":[{"type":"track","userId":"u","event":"E"}]}`, false},
	{"number id", `{"batch":[{"type":"track","userId":12,"event":"E"}]}`, false},
	{"missing type", `{"batch":[{"userId":"u"}]}`, false},
	{"invalid message", `{"batch":[{"type":"track","userId":"u"}]}`, false},
	{"empty batch", `{"batch":[]}`, false},
	{"duplicate batch", `{"batch":[{"type":"track","userId":"u","event":"E"}],"batch":[{"type":"track","userId":"v","event":"E"}]}`, false},
	{"trailing comma", `{"batch":[{"type":"track","userId":"u","event":"E",}]}`, false},
	{"trailing data", `{"batch":[{"type":"track","userId":"u","event":"E"}]} x`, false},
	{"bad number", `{"batch":[{"type":"track","userId":"u","event":"E","properties":{"a":01}}]}`, false},
	{"control char", "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\\u0000\",\"properties\":{\"a\":\"\x01\"}}]}", false},
	{"deep nesting", `{"batch":[{"type":"track","userId":"u","event":"E","properties":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}]}`, false},
}

func TestFastBatch(t *testing.T) {
	for _, tc := range fastCases {
		t.Run(tc.name, func(t *testing.T) {
			fast, ok := fastBatch([]byte(tc.body), fuzzNow)
			if ok != tc.fast {
				t.Fatalf("fast path taken = %v, want %v", ok, tc.fast)
			}
			general, err := decodeBatchGeneral([]byte(tc.body), fuzzNow)
			if ok {
				if err != nil {
					t.Fatalf("general path rejects: %v", err)
				}
				sameMessages(t, fast, general)
			}
			// Whichever path runs, DecodeBatch answers as the general path.
			got, gerr := DecodeBatch([]byte(tc.body), fuzzNow)
			if (gerr == nil) != (err == nil) || (err != nil && gerr.Error() != err.Error()) {
				t.Fatalf("DecodeBatch error %v, general path %v", gerr, err)
			}
			if err == nil {
				sameMessages(t, got, general)
			}
		})
	}
}

// TestFastBatchSeeds: the recorded SDK batches take the fast path.
func TestFastBatchSeeds(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecodeBatch", "analytics_node_batch"))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[1])
	body, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fastBatch([]byte(body), fuzzNow); !ok {
		t.Fatal("the analytics-node batch does not take the fast path")
	}
}
