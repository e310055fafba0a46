package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/server"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "write an encrypted backup of the data store (or, with --vault, of the key vault) to FILE; works while `custody serve` runs",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "vault", Usage: "back up the key vault instead of the data store (keep the two apart: docs/operations.md)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("backup needs exactly one FILE", exitUsage)
			}
			path := c.Args().First()
			b, cfg, err := openBackend(c)
			if err != nil {
				return err
			}
			defer b.Close()
			// Written next to FILE and renamed when complete: FILE is never
			// a partial backup.
			tmp, err := os.CreateTemp(filepath.Dir(path), ".custody-backup-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if c.Bool("vault") {
				_, err = b.BackupVault(c.Context, tmp)
			} else {
				_, err = b.Backup(c.Context, tmp)
			}
			if err == nil {
				err = tmp.Sync()
			}
			if err := errors.Join(err, tmp.Close()); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			// Read it back: every frame authenticates and the trailer is there.
			f, err := os.Open(tmp.Name())
			if err != nil {
				return err
			}
			info, err := core.InspectBackup(c.Context, cfg, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("backup: the file written does not read back: %w", err)
			}
			if err := os.Rename(tmp.Name(), path); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, info)
			}
			fmt.Fprintf(c.App.Writer, "%s backup written to %s: %d records, %d bytes, encrypted (%s)\n",
				info.Header.Kind, path, info.Records, info.Bytes, formatPrefixCounts(info.ByPrefix))
			return nil
		},
	}
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name: "restore",
		Usage: "replace the data store with a backup (people deleted since it was taken stay deleted), " +
			"or with --vault recreate a missing key vault; `custody serve` must be stopped",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "replace a data store that holds data"},
			&cli.BoolFlag{Name: "vault", Usage: "FILE is a vault backup: recreate the key vault (only where there is none)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("restore needs exactly one FILE", exitUsage)
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			if cl, err := server.Dial(c.Context, cfg.SocketPath()); err == nil {
				cl.Close()
				return cli.Exit(fmt.Sprintf("custody serve is running (it answers on %s): stop it first; "+
					"a restore replaces the whole data store (backups can be taken while it runs)", cfg.SocketPath()), exitLocked)
			}
			f, err := os.Open(c.Args().First())
			if err != nil {
				return err
			}
			defer f.Close()
			opts := core.Options{Logger: newLogger(cfg, c.App.ErrWriter)}
			if c.Bool("vault") {
				info, err := core.RestoreVault(c.Context, cfg, opts, f)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, info)
				}
				fmt.Fprintf(c.App.Writer, "key vault restored from a backup of %s: %d records\n", info.Header.Created.Format("2006-01-02 15:04 MST"), info.Records)
				return nil
			}
			rep, err := core.Restore(c.Context, cfg, opts, f, core.RestoreOptions{Force: c.Bool("force")})
			if errors.Is(err, core.ErrRestoreNotEmpty) {
				return cli.Exit(err.Error(), exitUsage)
			}
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, rep)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "restored a backup of %s: %d records (%s)\n", rep.Backup.Header.Created.Format("2006-01-02 15:04 MST"),
				sum(rep.Restored), formatPrefixCounts(rep.Restored))
			fmt.Fprintf(w, "could not be opened, dropped: %d records of %d deleted profiles (%s)\n",
				sum(rep.Unopenable), rep.DeletedProfiles, formatPrefixCounts(rep.Unopenable))
			if len(rep.KeptFromReplaced) > 0 {
				fmt.Fprintf(w, "kept from the replaced store: %s\n", formatPrefixCounts(rep.KeptFromReplaced))
			}
			if rep.SuppressionsAdded > 0 {
				fmt.Fprintf(w, "identifiers of deleted people suppressed: %d\n", rep.SuppressionsAdded)
			}
			if rep.Reshredded > 0 {
				fmt.Fprintf(w, "data keys shredded again (deletions certified on the audit log): %d\n", rep.Reshredded)
			}
			if n := sum(rep.NoKey); n > 0 {
				fmt.Fprintf(w, "warning: %d records have no data key in this vault (%s): restore the vault backup taken with this data\n", n, formatPrefixCounts(rep.NoKey))
			}
			switch rep.Audit {
			case "reanchored":
				fmt.Fprintf(w, "audit log: the restored chain ends at entry %d, the sealed head was at %d; reanchored with an audit.reanchor entry\n",
					rep.Reanchor.ChainEnd, rep.Reanchor.PreviousHead)
			default:
				fmt.Fprintln(w, "audit log: kept from the replaced store, restore recorded")
			}
			return nil
		},
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func formatPrefixCounts(m map[string]int64) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
