// Command custody is the Custody CLI. It is thin: flags become a
// core.Config, the work is done by core (or, when `custody serve` holds the
// data directory, by the running server over its unix socket), and the
// result is printed. It is the only place that calls os.Exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
)

// Exit codes (docs/cli.md).
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
	exitRejected = 4 // the command ran, but some input was rejected
	exitNoInit   = 5
	exitLocked   = 6
	exitWrongKey = 7
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("CUSTODY_CPUPROFILE"), os.Stderr)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile of the whole command to path when it is
// set (CUSTODY_CPUPROFILE, an operator's diagnostic knob used by
// bench/ingest.sh PROFILE=1); the profile holds function names and
// timings, never data.
func startProfile(path string, stderr io.Writer) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(stderr, "custody: CUSTODY_CPUPROFILE:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(stderr, "custody: CUSTODY_CPUPROFILE:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, interspersed(app, args))
	if err == nil {
		return exitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "custody:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "custody:", err)
	return exitCode(err)
}

func exitCode(err error) int {
	switch {
	case errors.Is(err, core.ErrProfileNotFound), errors.Is(err, core.ErrSegmentNotFound):
		return exitNotFound
	case errors.Is(err, core.ErrNotInitialised), errors.Is(err, core.ErrNoMasterKey):
		return exitNoInit
	case errors.Is(err, store.ErrLocked):
		return exitLocked
	case errors.Is(err, keys.ErrWrongMasterKey), errors.Is(err, store.ErrWrongKey):
		return exitWrongKey
	case errors.Is(err, keys.ErrBadMasterKey), errors.Is(err, keys.ErrMasterKeyPermissions):
		return exitUsage
	case errors.Is(err, core.ErrInvalidConfig), errors.Is(err, core.ErrInvalidInput), errors.Is(err, core.ErrInvalidRole),
		errors.Is(err, errUsage):
		return exitUsage
	}
	return exitFailure
}

var errUsage = errors.New("usage")

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "custody",
		Usage:     "privacy-first customer data platform",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Value: "./custody-data", EnvVars: []string{"CUSTODY_DATA"}, Usage: "data directory"},
			&cli.StringFlag{Name: "config", Usage: "config file (default: <data>/custody.yaml)"},
			&cli.StringFlag{Name: "master-key-file", Usage: "master key file (default: <data>/master.key); or set CUSTODY_MASTER_KEY / CUSTODY_PASSPHRASE"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn, error (default from config: info)"},
			&cli.StringFlag{Name: "policies", Usage: "a directory of .rego files replacing the built-in policies (default from config: policies.dir)"},
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run() prints and maps errors
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return cli.Exit(err.Error(), exitUsage)
		},
		Commands: commands(),
	}
	usageEverywhere(app.Commands)
	return app
}

// commands builds the command tree as declared (the generated reference in
// docs/cli.md reads it before usageEverywhere rewrites required flags).
func commands() []*cli.Command {
	return []*cli.Command{
		initCommand(), serveCommand(), apikeyCommand(), importCommand(), profileCommand(),
		keysCommand(), demoCommand(), consentCommand(), policyCommand(), auditCommand(), segmentCommand(), privacyCommand(),
		backupCommand(), restoreCommand(),
	}
}

// usageEverywhere makes usage errors of every subcommand (unknown flags,
// missing required flags) exit with exitUsage: urfave/cli applies the
// app's OnUsageError to the top level only, and reports a missing required
// flag outside it.
func usageEverywhere(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return cli.Exit(err.Error(), exitUsage) }
		var required []string
		for _, f := range c.Flags {
			if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
				required = append(required, f.Names()[0])
			}
		}
		if action := c.Action; action != nil && len(required) > 0 {
			c.Before = func(ctx *cli.Context) error {
				for _, name := range required {
					if !ctx.IsSet(name) {
						return cli.Exit(fmt.Sprintf("missing required flag --%s", name), exitUsage)
					}
				}
				return nil
			}
			for _, f := range c.Flags {
				unrequire(f)
			}
		}
		usageEverywhere(c.Subcommands)
	}
}

func unrequire(f cli.Flag) {
	switch f := f.(type) {
	case *cli.StringFlag:
		f.Required = false
	case *cli.IntFlag:
		f.Required = false
	case *cli.BoolFlag:
		f.Required = false
	}
}

// interspersed moves flags written after positional arguments in front of
// them, so that the documented forms such as `custody import FILE --json`
// work (urfave/cli v2 stops parsing flags at the first argument).
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds := app.Commands
	flags := app.Flags
	i := 1
	// Walk global flags and command names down to the leaf command.
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			out = append(out, a)
			if takesValue(flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
			i++
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break
		}
		out = append(out, a)
		cmds, flags = next.Subcommands, next.Flags
		i++
		if len(cmds) == 0 {
			break
		}
	}
	var fl, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			fl = append(fl, a)
			if takesValue(flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				fl = append(fl, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	out = append(out, fl...)
	return append(out, pos...)
}

func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

// loadConfig builds the Config from defaults, the config file, the
// environment and the flags, in that order, and validates it.
func loadConfig(c *cli.Context) (core.Config, error) {
	cfg := core.DefaultConfig()
	cfg.DataDir = c.String("data")
	path, optional := c.String("config"), false
	if path == "" {
		path, optional = cfg.DataDir+"/"+core.ConfigFile, true
	}
	if err := cfg.LoadConfigFile(path, optional); err != nil {
		return cfg, err
	}
	cfg.ApplyEnv(os.Getenv)
	if v := c.String("master-key-file"); v != "" {
		cfg.MasterKeyFile = v
	}
	if v := c.String("log-level"); v != "" {
		cfg.Log.Level = v
	}
	if v := c.String("policies"); v != "" {
		cfg.Policies.Dir = v
	}
	return cfg, cfg.Validate()
}

func newLogger(cfg core.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}
