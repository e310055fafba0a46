package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/segments"
)

func segmentCommand() *cli.Command {
	return &cli.Command{
		Name:  "segment",
		Usage: "define and evaluate segments (every evaluation goes through the consent policy gate)",
		Subcommands: []*cli.Command{
			{
				Name:  "templates",
				Usage: "list the built-in templates and their parameters",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					ts := segments.Templates()
					if c.Bool("json") {
						return printJSON(c.App.Writer, ts)
					}
					for _, t := range ts {
						fmt.Fprintf(c.App.Writer, "%-24s %s\n", t.Name, t.Description)
						for _, p := range t.Params {
							fmt.Fprintf(c.App.Writer, "  --param %s=%v\n", p.Name, p.Default)
						}
					}
					return nil
				},
			},
			{
				Name:      "apply",
				Usage:     "store a segment from a JSON/YAML file ('-' for stdin) or a built-in template",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "template", Usage: "a template name (`custody segment templates`)"},
					&cli.StringSliceFlag{Name: "param", Usage: "template parameter name=value (repeatable)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: func(c *cli.Context) error {
					tmpl := c.String("template")
					if (tmpl == "") == (c.NArg() != 1) {
						return cli.Exit("give a FILE or --template NAME", exitUsage)
					}
					params := map[string]string{}
					for _, p := range c.StringSlice("param") {
						k, v, ok := strings.Cut(p, "=")
						if !ok {
							return cli.Exit("--param takes name=value", exitUsage)
						}
						params[k] = v
					}
					var data []byte
					if tmpl == "" {
						var err error
						if p := c.Args().First(); p == "-" {
							data, err = io.ReadAll(os.Stdin)
						} else {
							data, err = os.ReadFile(p)
						}
						if err != nil {
							return err
						}
					}
					return withBackend(c, func(b backend) (*segments.Definition, error) {
						if tmpl != "" {
							return b.ApplyTemplate(c.Context, tmpl, params)
						}
						return b.ApplySegmentData(c.Context, data)
					}, func(w io.Writer, d *segments.Definition) {
						fmt.Fprintf(w, "applied segment %s (purpose %s)\n", d.Name, d.Purpose)
					})
				},
			},
			{
				Name: "list",
				Usage: "list the applied segments with their active member counts and hygiene warnings " +
					"(too small, overlapping another, unused; thresholds in segments.hygiene)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "now", Usage: "judge last use as of this RFC3339 time (default: now)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: func(c *cli.Context) error {
					now, err := nowFlag(c)
					if err != nil {
						return err
					}
					return withBackend(c, func(b backend) ([]core.SegmentHealth, error) { return b.SegmentHygiene(c.Context, now) },
						printSegmentList)
				},
			},
			{
				Name:      "eval",
				Usage:     "dry run: how many people the segment reaches, and how many were left out for lack of consent (counts only)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "now", Usage: "evaluate as of this RFC3339 time (default: now)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("segment eval needs exactly one NAME", exitUsage)
					}
					now, err := nowFlag(c)
					if err != nil {
						return err
					}
					return withBackend(c, func(b backend) (core.SegmentEval, error) {
						return b.EvaluateSegment(c.Context, c.Args().First(), now)
					}, func(w io.Writer, ev core.SegmentEval) {
						fmt.Fprintf(w, "%s (purpose %s) as of %s: %d people allowed and matching, %d left out for lack of consent, %d evaluated\n",
							ev.Segment, ev.Purpose, ev.At.Format(time.RFC3339), ev.Allowed, ev.NotConsented, ev.Evaluated)
						if ev.Groups != nil {
							fmt.Fprintf(w, "by split group: %s\n", formatCountMap(ev.Groups))
						}
					})
				},
			},
			{
				Name:      "refresh",
				Usage:     "re-evaluate segments now and record who entered and left (serve does this every segments.refresh_interval)",
				ArgsUsage: "[NAME]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "now", Usage: "as of this RFC3339 time (default: now)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: func(c *cli.Context) error {
					now, err := nowFlag(c)
					if err != nil {
						return err
					}
					return withBackend(c, func(b backend) ([]core.RefreshReport, error) {
						if c.NArg() == 1 {
							r, err := b.RefreshSegment(c.Context, c.Args().First(), now)
							return []core.RefreshReport{r}, err
						}
						defs, err := b.Segments(c.Context)
						if err != nil {
							return nil, err
						}
						var out []core.RefreshReport
						for _, d := range defs {
							r, err := b.RefreshSegment(c.Context, d.Name, now)
							if err != nil {
								return out, err
							}
							out = append(out, r)
						}
						return out, nil
					}, func(w io.Writer, rs []core.RefreshReport) {
						for _, r := range rs {
							fmt.Fprintf(w, "%-26s %6d members (+%d entered, -%d left), %d not consented\n", r.Segment, r.Allowed, r.Entered, r.Exited, r.NotConsented)
						}
					})
				},
			},
			{
				Name:      "show",
				Usage:     "a segment's report: members, size history, overlap with other segments (counts only)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("segment show needs exactly one NAME", exitUsage)
					}
					return withBackend(c, func(b backend) (core.SegmentShow, error) { return b.ShowSegment(c.Context, c.Args().First()) },
						func(w io.Writer, sh core.SegmentShow) {
							fmt.Fprintf(w, "%s (purpose %s): %d members\n%s\n", sh.Name, sh.Purpose, sh.Members, sh.Description)
							if sh.Groups != nil {
								fmt.Fprintf(w, "by split group: %s\n", formatCountMap(sh.Groups))
							}
							fmt.Fprintln(w, "size history:")
							for _, p := range sh.History {
								fmt.Fprintf(w, "  %s  %6d members, %d not consented\n", p.At.Format(time.RFC3339), p.Members, p.NotConsented)
							}
							fmt.Fprintln(w, "overlap:")
							for name, n := range sh.Overlap {
								fmt.Fprintf(w, "  %-26s %d\n", name, n)
							}
						})
				},
			},
			segmentReportCommand(),
			{
				Name:      "delete",
				Usage:     "remove a segment with its memberships and size history",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("segment delete needs exactly one NAME", exitUsage)
					}
					b, _, err := openBackend(c)
					if err != nil {
						return err
					}
					defer b.Close()
					if err := b.DeleteSegment(c.Context, c.Args().First()); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "deleted segment %s\n", c.Args().First())
					return nil
				},
			},
			{
				Name:      "export",
				Usage:     "write the segment's consented members to a destination, with only the fields it may receive (progress on stderr when it is a terminal)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "destination", Required: true, Usage: "a destination of custody.yaml"},
					&cli.StringFlag{Name: "now", Usage: "evaluate as of this RFC3339 time (default: now)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("segment export needs exactly one NAME", exitUsage)
					}
					now, err := nowFlag(c)
					if err != nil {
						return err
					}
					return withBackend(c, func(b backend) (core.ExportReport, error) {
						progress, done := exportProgress(c)
						defer done()
						return b.ExportSegment(c.Context, c.Args().First(), c.String("destination"), now, progress...)
					}, func(w io.Writer, r core.ExportReport) {
						fmt.Fprintf(w, "exported %d people of %s to %s (%s): fields %v; %d left out for lack of consent, %d not allowed to this destination\n",
							r.Rows, r.Segment, r.Destination, r.Path, r.Fields, r.NotConsented, r.ExportDenied)
					})
				},
			},
		},
	}
}

// nowFlag reads --now (zero: the current time).
func nowFlag(c *cli.Context) (time.Time, error) {
	v := c.String("now")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, cli.Exit("--now must be an RFC3339 time", exitUsage)
	}
	return t, nil
}

// printSegmentList prints one line per segment, then its warnings.
func printSegmentList(w io.Writer, list []core.SegmentHealth) {
	for _, s := range list {
		fmt.Fprintf(w, "%-24s %-36s %8d members  %s\n", s.Name, s.Purpose, s.Members, s.Description)
		for _, x := range s.Warnings {
			fmt.Fprintf(w, "    warning (%s): %s\n", x.Code, x.Message)
		}
	}
}
