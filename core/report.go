package core

import (
	"html/template"
	"io"
)

// accessHTML renders an access report for a person to read. html/template
// escapes every value: a trait holding markup shows as text.
var accessHTML = template.Must(template.New("access").Funcs(template.FuncMap{
	"str": func(b []byte) string { return string(b) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your data</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{text-align:left;border-bottom:1px solid #ddd;padding:.3rem .5rem;vertical-align:top}code{font-size:13px}</style>
</head><body>
<h1>The data we hold about you</h1>
<p>Report generated {{.GeneratedAt.Format "2 January 2006 15:04 MST"}}. {{if not .Person}}We hold no data linked to the identifier you gave: no profile, no events, no consent records, no exports, no segment memberships.</p>
{{else}}It covers every profile linked to you ({{len .Person.Profiles}}).</p>
<h2>Identifiers</h2>
<table><tr><th>Type</th><th>Value</th><th>First seen</th></tr>
{{range .Person.Identifiers}}<tr><td>{{.Type}}</td><td>{{.Value}}</td><td>{{.FirstSeen.Format "2006-01-02"}}</td></tr>{{end}}</table>
<h2>Profile</h2>
<table><tr><th>Trait</th><th>Value</th></tr>
{{range $k, $v := .Person.Traits}}<tr><td>{{$k}}</td><td><code>{{str $v}}</code></td></tr>{{end}}</table>
<h2>What we computed from your activity</h2>
<table><tr><th>Computed trait</th><th>Value</th></tr>
{{range $k, $v := .Person.Computed}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>
<h2>Consent</h2>
<p>Jurisdiction: {{if .Person.Consent.Jurisdiction}}{{.Person.Consent.Jurisdiction}}{{else}}unknown{{end}}</p>
<table><tr><th>When</th><th>Purpose</th><th>Decision</th><th>How</th></tr>
{{range .Person.Consent.History}}<tr><td>{{.CollectedAt.Format "2006-01-02 15:04"}}</td><td>{{.Purpose}}</td><td>{{.Status}}</td><td>{{.Source}} {{.Notice}}</td></tr>{{end}}</table>
<h2>Who received your data</h2>
<table><tr><th>When</th><th>Recipient</th><th>Fields</th></tr>
{{range .Exports}}<tr><td>{{.At.Format "2006-01-02"}}</td><td>{{.Destination}} ({{.Kind}})</td><td>{{range $i, $f := .Fields}}{{if $i}}, {{end}}{{$f}}{{end}}</td></tr>{{else}}<tr><td colspan="3">No one.</td></tr>{{end}}</table>
<h2>Segments</h2>
<table><tr><th>Segment</th><th>Entered</th><th>Left</th></tr>
{{range .Memberships}}<tr><td>{{.Segment}}</td><td>{{.EnteredAt.Format "2006-01-02"}}</td><td>{{if .ExitedAt}}{{.ExitedAt.Format "2006-01-02"}}{{end}}</td></tr>{{$s := .Segment}}{{range .Earlier}}<tr><td>{{$s}} (earlier)</td><td>{{.EnteredAt.Format "2006-01-02"}}</td><td>{{.ExitedAt.Format "2006-01-02"}}</td></tr>{{end}}{{else}}<tr><td colspan="3">None.</td></tr>{{end}}</table>
<h2>Your requests</h2>
<table><tr><th>Received</th><th>Request</th><th>Status</th></tr>
{{range .Requests}}<tr><td>{{.ReceivedAt.Format "2006-01-02"}}</td><td>{{.Type}} ({{.Regulation}}, by {{.IdentifierType}})</td><td>{{.Status}}</td></tr>{{else}}<tr><td colspan="3">None before this one.</td></tr>{{end}}</table>
<h2>Activity ({{.Person.EventCount}} events)</h2>
<table><tr><th>When</th><th>What</th></tr>
{{range .Person.Events}}<tr><td>{{.Timestamp.Format "2006-01-02 15:04"}}</td><td>{{.Type}} {{.Event}}{{.Name}}</td></tr>{{end}}</table>
{{end}}</body></html>
`))

// RenderAccessHTML writes the readable rendering of an access report.
func RenderAccessHTML(w io.Writer, rep AccessReport) error { return accessHTML.Execute(w, rep) }
