package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

var update = flag.Bool("update", false, "rewrite the generated reference in docs/cli.md")

const (
	refBegin = "<!-- BEGIN reference generated from the CLI by `go test ./cmd/custody -update`; do not edit by hand -->\n"
	refEnd   = "<!-- END generated reference -->\n"
)

// TestCLIReference renders every command, its arguments and flags from
// the urfave/cli app itself and compares the result with the reference
// section of docs/cli.md, so the document cannot drift from the binary.
// -update rewrites the section.
func TestCLIReference(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	app.Commands = commands() // with their required flags still marked
	got := renderReference(app)
	path := filepath.Join("..", "..", "docs", "cli.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, refBegin), strings.Index(doc, refEnd)
	if *update {
		if i < 0 || j < i {
			doc = strings.TrimRight(doc, "\n") + "\n\n## Reference\n\n" + refBegin + got + refEnd
		} else {
			doc = doc[:i+len(refBegin)] + got + doc[j:]
		}
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if i < 0 || j < i {
		t.Fatalf("docs/cli.md has no generated reference section; run go test ./cmd/custody -update")
	}
	if have := doc[i+len(refBegin) : j]; have != got {
		hl, gl := strings.Split(have, "\n"), strings.Split(got, "\n")
		for k := range min(len(hl), len(gl)) {
			if hl[k] != gl[k] {
				t.Fatalf("docs/cli.md's reference differs from the CLI at its line %d:\n doc: %s\n cli: %s\nrun go test ./cmd/custody -update", k+1, hl[k], gl[k])
			}
		}
		t.Fatalf("docs/cli.md's reference has %d lines, the CLI gives %d; run go test ./cmd/custody -update", len(hl), len(gl))
	}
}

func renderReference(app *cli.App) string {
	var b strings.Builder
	b.WriteString("Global flags (before the command):\n\n")
	flagTable(&b, app.Flags)
	for _, c := range app.Commands {
		renderCommand(&b, "custody", c)
	}
	return b.String()
}

func renderCommand(b *strings.Builder, parent string, c *cli.Command) {
	if c.Hidden {
		return
	}
	name := parent + " " + c.Name
	if len(c.Subcommands) > 0 {
		fmt.Fprintf(b, "\n### %s\n\n%s.\n", name, c.Usage)
		for _, s := range c.Subcommands {
			renderCommand(b, name, s)
		}
		return
	}
	form := name
	if len(c.VisibleFlags()) > 0 {
		form += " [flags]"
	}
	if c.ArgsUsage != "" {
		form += " " + c.ArgsUsage
	}
	fmt.Fprintf(b, "\n### `%s`\n\n%s.\n", form, strings.TrimSuffix(c.Usage, "."))
	if len(c.Aliases) > 0 {
		fmt.Fprintf(b, "\nAliases: %s.\n", strings.Join(c.Aliases, ", "))
	}
	if len(c.VisibleFlags()) > 0 {
		b.WriteString("\n")
		flagTable(b, c.VisibleFlags())
	}
}

func flagTable(b *strings.Builder, flags []cli.Flag) {
	b.WriteString("| flag | default | env | |\n|---|---|---|---|\n")
	for _, f := range flags {
		d, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		names := f.Names()
		var forms []string
		for _, n := range names {
			if len(n) == 1 {
				forms = append(forms, "-"+n)
			} else {
				forms = append(forms, "--"+n)
			}
		}
		form := "`" + strings.Join(forms, "`, `")
		if d.TakesValue() {
			form += " value"
		}
		form += "`"
		if s, ok := f.(cli.DocGenerationSliceFlag); ok && s.IsSliceFlag() {
			form += " (repeatable)"
		}
		if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() {
			form += " **required**"
		}
		def := d.GetDefaultText()
		if def == "" && d.TakesValue() {
			def = d.GetValue()
		}
		if !d.TakesValue() {
			def = "" // a switch: off unless given
		}
		if def != "" && def != `""` {
			def = "`" + def + "`"
		} else {
			def = ""
		}
		var env []string
		for _, e := range d.GetEnvVars() {
			env = append(env, "`"+e+"`")
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", form, def, strings.Join(env, ", "), cell(d.GetUsage()))
	}
}

// cell escapes what would break a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}
