package server

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadAllWithHint(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	boom := errors.New("boom")
	tests := []struct {
		name    string
		rd      func() io.Reader
		hint    int64
		want    []byte
		wantErr error
	}{
		{"no hint", func() io.Reader { return bytes.NewReader(data) }, 0, data, nil},
		{"exact hint", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)), data, nil},
		{"hint too small", func() io.Reader { return bytes.NewReader(data) }, 10, data, nil},
		{"hint too large", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)) * 3, data, nil},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }, 7, data, nil},
		{"empty body", func() io.Reader { return bytes.NewReader(nil) }, 5, []byte{}, nil},
		{"error after data", func() io.Reader {
			return io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(boom))
		}, int64(len(data)), data[:100], boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(tt.rd(), tt.hint)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("read %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}
