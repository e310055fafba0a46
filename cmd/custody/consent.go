package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/privacy"
)

func consentCommand() *cli.Command {
	return &cli.Command{
		Name:  "consent",
		Usage: "record and show consent (history is kept, never overwritten)",
		Subcommands: []*cli.Command{
			{
				Name:  "set",
				Usage: "record a consent decision for the person holding an identifier",
				Flags: append(identifierFlags(),
					&cli.StringFlag{Name: "purpose", Required: true, Usage: "a purpose (`custody policy purposes`), e.g. marketing.communications.email"},
					&cli.StringFlag{Name: "status", Required: true, Usage: "granted, denied or withdrawn"},
					&cli.StringFlag{Name: "jurisdiction", Usage: "EU, UK, US-CA, US-<state> or a country code"},
					&cli.StringFlag{Name: "lawful-basis", Usage: "consent (default for granted), contract, legal_obligation, vital_interests, public_task, legitimate_interests"},
					&cli.StringFlag{Name: "notice", Usage: "id/version or hash of the notice shown"},
					&cli.StringFlag{Name: "collected-at", Usage: "when the person decided (RFC3339; default now)"},
					&cli.StringFlag{Name: "expires", Usage: "expiry: RFC3339 time or a duration such as 365d"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: func(c *cli.Context) error {
					id, err := identifierFromFlags(c)
					if err != nil {
						return err
					}
					req := core.ConsentRequest{Identifier: id, Purpose: c.String("purpose"), Status: c.String("status"),
						Jurisdiction: c.String("jurisdiction"), LawfulBasis: c.String("lawful-basis"), Notice: c.String("notice"), Source: "cli"}
					if v := c.String("collected-at"); v != "" {
						t, err := time.Parse(time.RFC3339, v)
						if err != nil {
							return cli.Exit("--collected-at must be an RFC3339 time", exitUsage)
						}
						req.CollectedAt = t
					}
					if v := c.String("expires"); v != "" {
						t, err := time.Parse(time.RFC3339, v)
						if err != nil {
							d, derr := core.ParseDuration(v)
							if derr != nil || d <= 0 {
								return cli.Exit("--expires must be an RFC3339 time or a duration such as 365d", exitUsage)
							}
							from := req.CollectedAt
							if from.IsZero() {
								from = time.Now().UTC()
							}
							t = from.Add(d)
						}
						req.ExpiresAt = &t
					}
					return withBackend(c, func(b backend) (privacy.Consent, error) {
						return b.RecordConsent(c.Context, req)
					}, func(w io.Writer, rec privacy.Consent) {
						fmt.Fprintf(w, "recorded: %s %s (basis %s, collected %s)\n", rec.Purpose, rec.Status, rec.LawfulBasis, rec.CollectedAt.Format(time.RFC3339))
					})
				},
			},
			{
				Name:  "show",
				Usage: "show a person's consent state per purpose and its full history",
				Flags: append(identifierFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: func(c *cli.Context) error {
					id, err := identifierFromFlags(c)
					if err != nil {
						return err
					}
					return withBackend(c, func(b backend) (core.ConsentView, error) { return b.Consent(c.Context, id) }, printConsent)
				},
			},
		},
	}
}

func printConsent(w io.Writer, cv core.ConsentView) {
	j := cv.Jurisdiction
	if j == "" {
		j = "unknown (the strictest rules apply)"
	}
	fmt.Fprintf(w, "jurisdiction: %s\nstate:\n", j)
	keys := make([]string, 0, len(cv.States))
	for k := range cv.States {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		st := cv.States[k]
		fmt.Fprintf(w, "  %-45s %-9s since %s (%s)", k, st.Record.Status, st.Record.CollectedAt.Format(time.RFC3339), st.Record.Source)
		if st.Conflict != "" {
			fmt.Fprintf(w, "  — %s", st.Conflict)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "history (%d records):\n", len(cv.History))
	for _, h := range cv.History {
		fmt.Fprintf(w, "  %s  %-45s %-9s %s %s\n", h.CollectedAt.Format(time.RFC3339), h.Purpose, h.Status, h.Source, h.Notice)
	}
}

func policyCommand() *cli.Command {
	dirFlag := &cli.StringFlag{Name: "policies", Usage: "a directory of .rego files (default: the built-in policies, or policies.dir of the config)"}
	policyDir := func(c *cli.Context) string {
		if d := c.String("policies"); d != "" {
			return d
		}
		cfg, err := loadConfig(c)
		if err == nil {
			return cfg.Policies.Dir
		}
		return ""
	}
	return &cli.Command{
		Name:  "policy",
		Usage: "test and evaluate the consent policies",
		Subcommands: []*cli.Command{
			{
				Name:  "test",
				Usage: "run the policy bundle's Rego tests (*_test.rego)",
				Flags: []cli.Flag{dirFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}, &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "list every test"}},
				Action: func(c *cli.Context) error {
					rep, err := policies.RunTests(c.Context, policyDir(c))
					if err != nil {
						return err
					}
					if c.Bool("json") {
						if err := printJSON(c.App.Writer, rep); err != nil {
							return err
						}
					} else {
						for _, r := range rep.Results {
							if !r.Pass || c.Bool("verbose") {
								status := "PASS"
								if !r.Pass {
									status = "FAIL"
								}
								fmt.Fprintf(c.App.Writer, "%s %s.%s %s\n", status, r.Package, r.Name, r.Fail)
							}
						}
						fmt.Fprintf(c.App.Writer, "%d passed, %d failed\n", rep.Passed, rep.Failed)
					}
					if rep.Failed > 0 {
						return cli.Exit("", exitFailure)
					}
					return nil
				},
			},
			{
				Name:  "eval",
				Usage: "evaluate one decision: --input FILE holds the policy input (docs/policies.md)",
				Flags: []cli.Flag{dirFlag, &cli.StringFlag{Name: "input", Required: true, Usage: "JSON input file ('-' for stdin)"}},
				Action: func(c *cli.Context) error {
					var raw []byte
					var err error
					if p := c.String("input"); p == "-" {
						raw, err = io.ReadAll(os.Stdin)
					} else {
						raw, err = os.ReadFile(p)
					}
					if err != nil {
						return err
					}
					var in policies.Input
					dec := json.NewDecoder(bytesReader(raw))
					dec.DisallowUnknownFields()
					if err := dec.Decode(&in); err != nil {
						return cli.Exit(fmt.Sprintf("input %s: not a policy input (JSON, docs/policies.md): %v", c.String("input"), err), exitUsage)
					}
					eng, err := policies.New(c.Context, policies.Options{Dir: policyDir(c)})
					if err != nil {
						return err
					}
					d, err := eng.Decide(c.Context, in)
					if err != nil {
						return cli.Exit(err.Error(), exitUsage)
					}
					return printJSON(c.App.Writer, d)
				},
			},
			{
				Name:  "purposes",
				Usage: "list the purposes (fideslang data uses) the policies know",
				Flags: []cli.Flag{dirFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					eng, err := policies.New(c.Context, policies.Options{Dir: policyDir(c)})
					if err != nil {
						return err
					}
					ps := eng.Purposes()
					if c.Bool("json") {
						return printJSON(c.App.Writer, ps)
					}
					for _, p := range ps {
						fmt.Fprintf(c.App.Writer, "%-45s %s\n", p.Key, p.Description)
					}
					return nil
				},
			},
		},
	}
}

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "verify and read the hash-chained audit log",
		Subcommands: []*cli.Command{
			{
				Name:  "verify",
				Usage: "recompute every entry's hash and link and check the sealed head; names the first bad entry",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					b, _, err := openBackend(c)
					if err != nil {
						return err
					}
					defer b.Close()
					rep, err := b.AuditVerify(c.Context)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						if err := printJSON(c.App.Writer, rep); err != nil {
							return err
						}
					} else if rep.OK {
						fmt.Fprintf(c.App.Writer, "audit log OK: %d entries, head %d\n", rep.Entries, rep.Head)
					}
					if !rep.OK {
						return cli.Exit(fmt.Sprintf("audit log FAILED at entry %d: %s", rep.FirstBad, rep.Problem), exitFailure)
					}
					return nil
				},
			},
			{
				Name:  "tail",
				Usage: "print the last entries",
				Flags: []cli.Flag{&cli.IntFlag{Name: "n", Value: 20, Usage: "how many"}, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					return withBackend(c, func(b backend) ([]audit.Entry, error) { return b.AuditTail(c.Context, c.Int("n")) },
						func(w io.Writer, es []audit.Entry) {
							for _, e := range es {
								fmt.Fprintf(w, "%6d  %s  %-18s %-42s %s\n", e.Seq, e.Time.Format(time.RFC3339), e.Kind, e.Actor, string(e.Data))
							}
						})
				},
			},
		},
	}
}

func privacyCommand() *cli.Command {
	regFlag := &cli.StringFlag{Name: "regulation", Value: "gdpr", Usage: "gdpr (answer due in one month) or ccpa (45 days)"}
	receiveFlag := &cli.BoolFlag{Name: "receive-only", Usage: "only record the request as received; carry it out with `custody privacy verify ID --method M` once the person's identity is verified"}
	request := func(typ string) func(c *cli.Context) error {
		return func(c *cli.Context) error {
			id, err := identifierFromFlags(c)
			if err != nil {
				return err
			}
			if t := c.String("type"); t != "" {
				typ = t
			}
			b, _, err := openBackend(c)
			if err != nil {
				return err
			}
			defer b.Close()
			if c.Bool("receive-only") {
				req, err := b.ReceiveRequest(c.Context, typ, c.String("regulation"), id)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, req)
				}
				printRequest(c.App.Writer, req)
				fmt.Fprintf(c.App.Writer, "next: custody privacy verify %s --method \"...\" (or reject %s --reason \"...\")\n", req.ID, req.ID)
				return nil
			}
			req, rep, err := b.HandleRequest(c.Context, typ, c.String("regulation"), id)
			return requestOutcome(c, req, rep, err)
		}
	}
	return &cli.Command{
		Name:  "privacy",
		Usage: "answer data subject requests (GDPR Art. 15, 17, 20; CCPA); every request is kept with its history and due date",
		Subcommands: []*cli.Command{
			{
				Name:  "access",
				Usage: "everything held about the person, decrypted, as JSON",
				Flags: append(identifierFlags(), regFlag, receiveFlag, &cli.BoolFlag{Name: "json", Usage: "the report is JSON either way"},
					&cli.StringFlag{Name: "html", Usage: "also write the readable rendering to this file"}),
				Action: request(core.RequestAccess),
			},
			{
				Name:  "delete",
				Usage: "erase the person everywhere, shred their keys, rotate the KEK and (by default) suppress their identifiers",
				Flags: append(identifierFlags(), regFlag, receiveFlag,
					&cli.StringFlag{Name: "type", Value: core.RequestSuppressWithDelete, Usage: "suppress_with_delete, or delete (erase without suppressing)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: request(core.RequestSuppressWithDelete),
			},
			{
				Name:   "suppress",
				Usage:  "drop every future event naming this identifier (without deleting)",
				Flags:  append(identifierFlags(), regFlag, receiveFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: request(core.RequestSuppress),
			},
			{
				Name:   "unsuppress",
				Usage:  "lift a suppression",
				Flags:  append(identifierFlags(), regFlag, receiveFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: request(core.RequestUnsuppress),
			},
			{
				Name:  "list",
				Usage: "privacy requests, newest first, with due dates",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "overdue", Usage: "only open requests past their due date"}, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					return withBackend(c, func(b backend) ([]*core.PrivacyRequest, error) { return b.Requests(c.Context, c.Bool("overdue")) },
						func(w io.Writer, rs []*core.PrivacyRequest) {
							for _, r := range rs {
								fmt.Fprintf(w, "%s  %-21s %-5s %-11s received %s  due %s\n", r.ID, r.Type, r.Regulation, r.Status,
									r.ReceivedAt.Format(time.RFC3339), r.DueAt.Format("2006-01-02"))
							}
						})
				},
			},
			{
				Name:      "verify",
				Usage:     "record how the person's identity was verified and carry out a received request",
				ArgsUsage: "ID",
				Flags: []cli.Flag{&cli.StringFlag{Name: "method", Required: true, Usage: "how the identity was verified, e.g. \"signed-in account\" (kept with the request)"},
					&cli.StringFlag{Name: "html", Usage: "access: also write the readable rendering to this file"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("privacy verify needs exactly one ID", exitUsage)
					}
					b, _, err := openBackend(c)
					if err != nil {
						return err
					}
					defer b.Close()
					req, rep, err := b.VerifyRequest(c.Context, c.Args().First(), c.String("method"))
					return requestOutcome(c, req, rep, err)
				},
			},
			{
				Name:      "reject",
				Usage:     "close a request without carrying it out (identity not verified, manifestly unfounded, ...)",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "reason", Required: true, Usage: "why (kept with the request)"}, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("privacy reject needs exactly one ID", exitUsage)
					}
					return withBackend(c, func(b backend) (*core.PrivacyRequest, error) {
						return b.RejectRequest(c.Context, c.Args().First(), c.String("reason"))
					}, printRequest)
				},
			},
			{
				Name:      "extend",
				Usage:     "extend an open request's deadline once (GDPR: two months; CCPA: 45 days), with the reason recorded",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "reason", Required: true, Usage: "why (kept with the request)"}, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("privacy extend needs exactly one ID", exitUsage)
					}
					return withBackend(c, func(b backend) (*core.PrivacyRequest, error) {
						return b.ExtendRequest(c.Context, c.Args().First(), c.String("reason"))
					}, printRequest)
				},
			},
			{
				Name:      "show",
				Usage:     "one request with its history and result",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("privacy show needs exactly one ID", exitUsage)
					}
					return withBackend(c, func(b backend) (*core.PrivacyRequest, error) { return b.Request(c.Context, c.Args().First()) }, printRequest)
				},
			},
		},
	}
}

// requestOutcome prints a request that was carried out: the access
// report as JSON (and, with --html, its readable rendering), or the
// request with its history.
func requestOutcome(c *cli.Context, req *core.PrivacyRequest, rep *core.AccessReport, err error) error {
	if err != nil {
		if req != nil {
			fmt.Fprintf(c.App.ErrWriter, "request %s: %s\n", req.ID, req.Status)
		}
		return err
	}
	if rep != nil {
		if h := c.String("html"); h != "" {
			f, err := os.OpenFile(h, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			if err := errors.Join(core.RenderAccessHTML(f, *rep), f.Close()); err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "readable report written to %s (mode 0600)\n", h)
		}
		if rep.Person == nil && !c.Bool("json") {
			// stdout stays the report (JSON either way); the note is for
			// the operator reading the terminal.
			fmt.Fprintf(c.App.ErrWriter, "no person is known by this %s: request %s completed with an empty report\n", req.IdentifierType, req.ID)
		}
		return printJSON(c.App.Writer, rep)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, req)
	}
	printRequest(c.App.Writer, req)
	return nil
}

func printRequest(w io.Writer, r *core.PrivacyRequest) {
	fmt.Fprintf(w, "request %s: %s (%s), %s; received %s, due %s\n", r.ID, r.Type, r.Regulation, r.Status,
		r.ReceivedAt.Format(time.RFC3339), r.DueAt.Format("2006-01-02"))
	for _, h := range r.History {
		fmt.Fprintf(w, "  %s  %-11s %s\n", h.At.Format(time.RFC3339), h.Status, h.Note)
	}
	if len(r.Result) > 0 {
		fmt.Fprintf(w, "result: %s\n", r.Result)
	}
}
