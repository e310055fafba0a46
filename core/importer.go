package core

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/custody-cdp/custody/core/event"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// BatchSize is how many messages go to Ingest at once.
	BatchSize int
	// MaxErrors caps the per-line errors kept in the report (all are counted).
	MaxErrors int
	// Progress, if set, is called with the bytes read so far.
	Progress func(bytesRead int64)
}

// LineError is one rejected input line. Error names the field and problem,
// never the value.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ImportReport is what Import did.
type ImportReport struct {
	Lines    int `json:"lines"`
	Rejected int `json:"rejected"`
	IngestResult
	Errors []LineError `json:"errors"`
}

// Import reads JSON Lines of Segment messages (each with its "type") and
// ingests the valid ones in batches; bad lines are reported with their line
// numbers and skipped. Each batch is durable when it is counted.
func (c *CDP) Import(ctx context.Context, r io.Reader, opts ImportOptions) (ImportReport, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = 100
	}
	rep := ImportReport{Errors: []LineError{}}
	br := bufio.NewReaderSize(r, 1<<20)
	var read int64
	batch := make([]event.Message, 0, opts.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := c.Ingest(ctx, batch)
		if err != nil {
			return err
		}
		rep.IngestResult.add(res)
		batch = batch[:0]
		if opts.Progress != nil {
			opts.Progress(read)
		}
		return nil
	}
	reject := func(line int, err error) {
		rep.Rejected++
		if len(rep.Errors) < opts.MaxErrors {
			rep.Errors = append(rep.Errors, LineError{Line: line, Error: err.Error()})
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		line, tooLong, err := readLine(br, event.MaxMessageBytes)
		read += int64(len(line))
		if len(line) > 0 || tooLong {
			rep.Lines++
			switch trimmed := bytes.TrimSpace(line); {
			case tooLong:
				reject(rep.Lines, fmt.Errorf("line longer than %d bytes: %w", event.MaxMessageBytes, event.ErrMessageTooLarge))
			case len(trimmed) == 0:
				rep.Lines-- // blank lines are not messages
			default:
				if rep.Lines == 1 {
					// A UTF-8 byte order mark, as Windows tools write, is an
					// encoding marker, not part of the first message.
					trimmed = bytes.TrimPrefix(trimmed, []byte("\xEF\xBB\xBF"))
				}
				m, derr := event.DecodeMessage(trimmed, "", c.now())
				if derr != nil {
					// The decoder's syntax reasons ("invalid character in
					// literal null") do not say the line is not JSON.
					if errors.Is(derr, event.ErrMalformedJSON) {
						derr = fmt.Errorf("%w: %w", event.ErrMalformedJSON, derr)
					}
					reject(rep.Lines, derr)
				} else {
					batch = append(batch, m)
				}
			}
			if len(batch) >= opts.BatchSize {
				if err := flush(); err != nil {
					return rep, err
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("read input: %w", err)
		}
	}
	if err := flush(); err != nil {
		return rep, err
	}
	if opts.Progress != nil {
		opts.Progress(read)
	}
	return rep, nil
}

// readLine returns the next line without its newline. A line longer than
// limit is consumed and reported as tooLong, without keeping it.
func readLine(br *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > limit+2 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), tooLong, err
	}
}
