package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/mapping"
	"github.com/custody-cdp/custody/core/server"
	"github.com/custody-cdp/custody/core/server/console"
	"github.com/custody-cdp/custody/identity"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create a data directory: master key, config file, key vault and store",
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			if err := core.Init(c.Context, cfg, core.Options{Logger: newLogger(cfg, c.App.ErrWriter)}); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "initialised %s\n", cfg.DataDir)
			if cfg.MasterKeyHex == "" && cfg.MasterKeyFile == "" && cfg.Passphrase == "" {
				fmt.Fprintf(c.App.Writer, "master key: %s/master.key (mode 0600) — back it up apart from the data; without it nothing can be read\n", cfg.DataDir)
			}
			return nil
		},
	}
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the HTTP API (Segment-compatible ingestion, admin API, /metrics)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Usage: "listen address (default from config: 127.0.0.1:8700)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (chain) file: serve HTTPS on --addr (needs --tls-key)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key file of --tls-cert"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			if a := c.String("addr"); a != "" {
				cfg.Server.Addr = a
			}
			if (c.String("tls-cert") == "") != (c.String("tls-key") == "") {
				return fmt.Errorf("serve: give both --tls-cert and --tls-key, or neither")
			}
			log := newLogger(cfg, c.App.ErrWriter)
			// The server owns the process: it sets the runtime's GC targets.
			debug.SetGCPercent(cfg.Server.GCPercent)
			debug.SetMemoryLimit(int64(cfg.Server.MemoryLimitMiB) << 20)
			cdp, err := core.Open(c.Context, cfg, core.Options{Logger: log})
			if err != nil {
				return err
			}
			so := server.DefaultOptions()
			so.Logger, so.Registry = log, cdp.Registry()
			so.ReadHeaderTimeout, so.ReadTimeout = cfg.Server.ReadHeaderTimeout.D(), cfg.Server.ReadTimeout.D()
			so.WriteTimeout, so.IdleTimeout = cfg.Server.WriteTimeout.D(), cfg.Server.IdleTimeout.D()
			so.ShutdownTimeout = cfg.Server.ShutdownTimeout.D()
			// The web console (/console/) owns its sessions and export
			// jobs; it is closed after the server stops, before the CDP.
			con, err := console.New(cdp, console.Options{Logger: log, SessionTTL: console.DefaultOptions().SessionTTL})
			if err != nil {
				_ = cdp.Close()
				return err
			}
			so.Console = con
			so.TLSCertFile, so.TLSKeyFile = c.String("tls-cert"), c.String("tls-key")
			srv := server.New(cdp, so)
			// SIGHUP reloads the policy bundle (and drops the decision
			// cache); a bundle that does not compile keeps the old one.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-c.Context.Done():
						return
					case <-hup:
						if err := cdp.PolicyEngine().Reload(c.Context); err != nil {
							log.Error("policy reload failed; keeping the loaded bundle", "err", err)
						} else {
							log.Info("policies reloaded", "bundle_hash", cdp.PolicyEngine().BundleHash())
						}
					}
				}
			}()
			// The sweep keeps memberships current (time-based conditions). It
			// is stopped and waited for before the CDP closes.
			sweepCtx, stopSweep := context.WithCancel(c.Context)
			sweepDone := make(chan struct{})
			go func() {
				defer close(sweepDone)
				every := cfg.Segments.RefreshInterval.D()
				if every <= 0 {
					return
				}
				t := time.NewTicker(every)
				defer t.Stop()
				for {
					select {
					case <-sweepCtx.Done():
						return
					case <-t.C:
						if _, err := cdp.RefreshAll(sweepCtx, time.Time{}); err != nil && sweepCtx.Err() == nil {
							log.Error("segment sweep failed", "err", err)
						}
					}
				}
			}()
			serr := srv.Serve(c.Context, cfg.Server.Addr, cfg.SocketPath(), func(addr string) {
				scheme := "http"
				if so.TLSCertFile != "" {
					scheme = "https"
				}
				fmt.Fprintf(c.App.Writer, "custody serving on %s://%s (admin socket %s)\n", scheme, addr, cfg.SocketPath())
				fmt.Fprintf(c.App.Writer, "policy bundle %s\n", cdp.PolicyEngine().BundleHash())
			})
			stopSweep()
			<-sweepDone
			_ = con.Close()
			cerr := cdp.Close()
			if serr != nil {
				return serr
			}
			return cerr
		},
	}
}

func apikeyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apikey",
		Usage: "manage API keys",
		Subcommands: []*cli.Command{{
			Name:  "create",
			Usage: "create a key; it is printed once and stored only hashed",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "role", Required: true, Usage: "ingest, marketer, dpo, admin or personalize"},
				&cli.StringFlag{Name: "name", Usage: "a label for the key"},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			},
			Action: func(c *cli.Context) error {
				role, err := core.ParseRole(c.String("role"))
				if err != nil {
					return err
				}
				return withBackend(c, func(b backend) (core.NewAPIKey, error) {
					return b.CreateAPIKey(c.Context, role, c.String("name"))
				}, func(w io.Writer, k core.NewAPIKey) {
					fmt.Fprintf(w, "%s\n(role %s, id %s; shown once — store it now)\n", k.Key, k.Role, k.ID)
				})
			},
		}, {
			Name:  "list",
			Usage: "list the keys (ids, names, roles; never the keys)",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			Action: func(c *cli.Context) error {
				return withBackend(c, func(b backend) ([]core.APIKey, error) {
					km, ok := b.(keyManager)
					if !ok {
						return nil, fmt.Errorf("this backend cannot list API keys")
					}
					return km.APIKeys(c.Context)
				}, func(w io.Writer, ks []core.APIKey) {
					for _, k := range ks {
						state := "active"
						if k.RevokedAt != nil {
							state = "revoked " + k.RevokedAt.Format(time.RFC3339)
						}
						fmt.Fprintf(w, "%s  %-11s  %-20q  created %s  %s\n", k.ID, k.Role, k.Name, k.CreatedAt.Format(time.RFC3339), state)
					}
				})
			},
		}, {
			Name:      "revoke",
			Usage:     "revoke a key by id: it stops authenticating at once",
			ArgsUsage: "ID",
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("apikey revoke needs exactly one key ID (see `custody apikey list`)", exitUsage)
				}
				return withBackend(c, func(b backend) (core.APIKey, error) {
					km, ok := b.(keyManager)
					if !ok {
						return core.APIKey{}, fmt.Errorf("this backend cannot revoke API keys")
					}
					return km.RevokeAPIKey(c.Context, c.Args().First())
				}, func(w io.Writer, k core.APIKey) {
					fmt.Fprintf(w, "revoked %s (%s, %q)\n", k.ID, k.Role, k.Name)
				})
			},
		}},
	}
}

// keyManager lists and revokes API keys (core.CDP and server.Client).
type keyManager interface {
	APIKeys(ctx context.Context) ([]core.APIKey, error)
	RevokeAPIKey(ctx context.Context, id string) (core.APIKey, error)
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import a JSON Lines file of Segment messages ('-' for stdin)",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.IntFlag{Name: "batch", Value: 1000, Usage: "messages per durable batch"},
			&cli.StringFlag{Name: "map", Usage: "a column mapping (YAML/JSON, docs/mapping.md): import FILE as CSV through it"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("import needs exactly one FILE argument", exitUsage)
			}
			var in io.Reader = os.Stdin
			var size int64 = -1
			if p := c.Args().First(); p != "-" {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil {
					size = st.Size()
				}
				in = f
			}
			b, _, err := openBackend(c)
			if err != nil {
				return err
			}
			defer b.Close()
			start := time.Now()
			in, done := withProgress(c, in, size, "importing")
			defer done()
			if mp := c.String("map"); mp != "" {
				rep, err := importCSV(c, b, in, mp)
				done()
				if err != nil {
					return err
				}
				return printImport(c, rep, time.Since(start))
			}
			rep, err := b.Import(c.Context, in, core.ImportOptions{BatchSize: c.Int("batch")})
			done()
			if err != nil {
				return err
			}
			return printImport(c, rep, time.Since(start))
		},
	}
}

func printImport(c *cli.Context, rep core.ImportReport, d time.Duration) error {
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else {
		w := c.App.Writer
		fmt.Fprintf(w, "lines %d, accepted %d, duplicates %d, suppressed %d, rejected %d, profiles created %d in %s (%.0f msgs/s)\n",
			rep.Lines, rep.Accepted, rep.Duplicates, rep.Suppressed, rep.Rejected, rep.ProfilesCreated, d.Round(time.Millisecond),
			float64(rep.Accepted+rep.Duplicates+rep.Suppressed)/max(d.Seconds(), 1e-9))
		for _, e := range rep.Errors {
			fmt.Fprintf(w, "  line %d: %s\n", e.Line, e.Error)
		}
		if rep.Rejected > len(rep.Errors) {
			fmt.Fprintf(w, "  … and %d more rejected lines\n", rep.Rejected-len(rep.Errors))
		}
	}
	if rep.Rejected > 0 {
		return cli.Exit("", exitRejected)
	}
	return nil
}

// withProgress wraps r with a progress bar on stderr when it is a terminal.
func withProgress(c *cli.Context, r io.Reader, size int64, what string) (io.Reader, func()) {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || c.Bool("json") {
		return r, func() {}
	}
	bar := progressbar.DefaultBytes(size, what)
	pr := progressbar.NewReader(r, bar)
	return &pr, func() { _ = bar.Finish() }
}

// exportProgress shows an export's progress on stderr when it is a
// terminal: a count of people while they are evaluated, then a bar over
// the rows written. Counts only, like everything an export reports.
// Elsewhere it asks for no progress at all.
func exportProgress(c *cli.Context) ([]core.ExportOption, func()) {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || c.Bool("json") {
		return nil, func() {}
	}
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription("evaluating people"),
		progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
	stage := "evaluating"
	progress := core.WithProgress(func(p core.ExportProgress) {
		if p.Stage != stage && p.Stage != "evaluating" {
			stage = p.Stage
			bar.ChangeMax(p.Total)
			bar.Describe(p.Stage + " rows")
		}
		if stage == "evaluating" {
			_ = bar.Set(p.People)
		} else {
			_ = bar.Set(p.Rows)
		}
	})
	return []core.ExportOption{progress}, func() { _ = bar.Finish() }
}

func identifierFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "user-id", Usage: "look up by userId"},
		&cli.StringFlag{Name: "anonymous-id", Usage: "look up by anonymousId"},
		&cli.StringFlag{Name: "email", Usage: "look up by email"},
		&cli.StringFlag{Name: "phone", Usage: "look up by phone"},
	}
}

func identifierFromFlags(c *cli.Context) (identity.Identifier, error) {
	var id identity.Identifier
	n := 0
	for _, p := range []struct {
		flag string
		typ  identity.Type
	}{{"user-id", identity.UserID}, {"anonymous-id", identity.AnonymousID}, {"email", identity.Email}, {"phone", identity.Phone}} {
		if v := c.String(p.flag); v != "" {
			id = identity.Identifier{Type: p.typ, Value: v}
			n++
		}
	}
	if n != 1 {
		return id, cli.Exit("give exactly one of --user-id, --anonymous-id, --email, --phone", exitUsage)
	}
	return id, nil
}

func profileCommand() *cli.Command {
	return &cli.Command{
		Name:  "profile",
		Usage: "read profiles",
		Subcommands: []*cli.Command{{
			Name:  "show",
			Usage: "decrypt and print a profile with its events",
			Flags: append(identifierFlags(),
				&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				&cli.IntFlag{Name: "events", Usage: "show only the newest N events (0: all)"}),
			Action: func(c *cli.Context) error {
				id, err := identifierFromFlags(c)
				if err != nil {
					return err
				}
				return withBackend(c, func(b backend) (*core.ProfileView, error) {
					return b.Profile(c.Context, id, core.ShowOptions{EventLimit: c.Int("events")})
				}, printProfile)
			},
		}, unmergeCommand()},
	}
}

func printProfile(w io.Writer, p *core.ProfileView) {
	fmt.Fprintf(w, "person %s (created %s, %d profile(s) in the cluster)\n", p.ID, p.CreatedAt.Format(time.RFC3339), len(p.Profiles))
	fmt.Fprintln(w, "identifiers:")
	for _, id := range p.Identifiers {
		note := ""
		if id.Blocked {
			note = "  (blocklisted: never merges)"
		}
		fmt.Fprintf(w, "  %-13s %-40s profile %s%s\n", id.Type, id.Value, id.Profile, note)
	}
	if len(p.Traits) > 0 {
		fmt.Fprintln(w, "traits:")
		names := make([]string, 0, len(p.Traits))
		for k := range p.Traits {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(w, "  %-13s %s\n", k, string(p.Traits[k]))
		}
	}
	if len(p.Computed) > 0 {
		fmt.Fprintln(w, "computed traits:")
		names := make([]string, 0, len(p.Computed))
		for k := range p.Computed {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(w, "  %-27s %v\n", k, p.Computed[k])
		}
	}
	if len(p.Merges) > 0 {
		fmt.Fprintln(w, "merges:")
		for _, m := range p.Merges {
			if m.Merged {
				fmt.Fprintf(w, "  %s  %s folded into %s (linked by %s)\n", m.At.Format(time.RFC3339), m.From, m.Into, m.Trigger)
			} else {
				fmt.Fprintf(w, "  %s  refused %s + %s (%s; %s)\n", m.At.Format(time.RFC3339), m.From, m.Into, m.Trigger, m.Reason)
			}
		}
	}
	for _, u := range p.Unmerges {
		fmt.Fprintf(w, "  unmerged %s from %s at %s: %s\n", u.Profile, u.From, u.At.Format(time.RFC3339), u.Reason)
	}
	fmt.Fprintf(w, "events (%d):\n", p.EventCount)
	for _, e := range p.Events {
		label := e.Event
		if label == "" {
			label = e.Name
		}
		fmt.Fprintf(w, "  %s  %-8s %s\n", e.Timestamp.Format(time.RFC3339), e.Type, strings.TrimSpace(label))
	}
}

func unmergeCommand() *cli.Command {
	return &cli.Command{
		Name:  "unmerge",
		Usage: "split a wrongly merged profile back out of its person, with its own identifiers, traits and events",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "profile", Required: true, Usage: "the folded profile id (a `from` in profile show's merges)"},
			&cli.StringFlag{Name: "reason", Required: true, Usage: "why (kept with the record)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			pid, err := uuid.Parse(c.String("profile"))
			if err != nil {
				return cli.Exit("--profile must be a profile id (UUID)", exitUsage)
			}
			return withBackend(c, func(b backend) (core.UnmergeResult, error) {
				return b.Unmerge(c.Context, pid, c.String("reason"))
			}, func(w io.Writer, r core.UnmergeResult) {
				fmt.Fprintf(w, "unmerged profile %s from %s; they are now %d person(s)\n", r.Profile, r.From, r.NewRoots)
			})
		},
	}
}

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "manage the key hierarchy",
		Subcommands: []*cli.Command{{
			Name:  "rotate",
			Usage: "start a new KEK epoch, re-wrap every live data key, destroy the old KEK",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			Action: func(c *cli.Context) error {
				return withBackend(c, func(b backend) (keys.RotateReport, error) {
					return b.RotateKeys(c.Context)
				}, func(w io.Writer, r keys.RotateReport) {
					fmt.Fprintf(w, "rotated: epoch %d -> %d, %d data keys re-wrapped, retired epochs %v, in %s\n",
						r.FromEpoch, r.ToEpoch, r.Rewrapped, r.Retired, r.Duration.Round(time.Millisecond))
				})
			},
		}},
	}
}

// importCSV turns CSV rows into Segment messages through a column mapping
// (on this side, so it works the same through a running server) and
// imports them; rejected rows are reported with their CSV line numbers.
func importCSV(c *cli.Context, b backend, in io.Reader, mappingFile string) (core.ImportReport, error) {
	raw, err := os.ReadFile(mappingFile)
	if err != nil {
		return core.ImportReport{}, cli.Exit(fmt.Sprintf("mapping: %v", err), exitUsage)
	}
	m, err := mapping.Parse(raw)
	if err != nil {
		return core.ImportReport{}, cli.Exit(fmt.Sprintf("mapping %s: %v", mappingFile, err), exitUsage)
	}
	pr, pw := io.Pipe()
	var rowErrs []core.LineError
	var lines [][]int // CSV lines of each emitted message, by message line
	bad := 0
	go func() {
		bw := bufio.NewWriterSize(pw, 1<<20)
		_, err := m.Convert(c.Context, in, func(msg []byte, from []int) error {
			lines = append(lines, from)
			if _, err := bw.Write(msg); err != nil {
				return err
			}
			return bw.WriteByte('\n')
		}, func(line int, err error) {
			bad++
			if len(rowErrs) < 100 {
				// The report carries the line; the error text need not repeat it.
				msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("line %d: ", line))
				rowErrs = append(rowErrs, core.LineError{Line: line, Error: msg})
			}
		})
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	rep, err := b.Import(c.Context, pr, core.ImportOptions{BatchSize: c.Int("batch")})
	_ = pr.Close()
	if err != nil {
		return rep, err
	}
	// Errors of the import refer to message lines: give the CSV lines.
	for i, e := range rep.Errors {
		if e.Line >= 1 && e.Line <= len(lines) && len(lines[e.Line-1]) > 0 {
			rep.Errors[i].Line = lines[e.Line-1][0]
		}
	}
	rep.Errors = append(rowErrs, rep.Errors...)
	rep.Rejected += bad
	rep.Lines = len(lines) + bad
	return rep, nil
}
