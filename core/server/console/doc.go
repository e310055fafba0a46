// Package console serves the web console of `custody serve` under
// /console/: server-rendered pages (html/template, embedded with the CSS and
// the little JavaScript they use; nothing is fetched from elsewhere) for the
// DPO, the marketer and the admin.
//
// Guarantees:
//   - A person signs in by pasting an API key. The key is checked with the
//     backend's Authenticate and then again on every request (a revoked key
//     ends its sessions at once); the browser holds only a random session
//     token in an HttpOnly, SameSite=Strict cookie (Secure over TLS).
//     Sessions live in memory, expire after Options.SessionTTL without use,
//     and are dropped on sign-out and on Close.
//   - Every POST carries the session's CSRF token in the form (the sign-in
//     form a pre-session token bound to a cookie), and a cross-origin Origin
//     header is refused.
//   - Each page checks the role of the key exactly as the HTTP API does: a
//     marketer key never reaches a profile, a consent record, a privacy
//     request or the audit log (403); marketer pages show counts only, never
//     a member or who was excluded. Profile pages ask the policy gate
//     (profile.read) first, as the API does.
//   - Identifiers travel in POST bodies, never in URLs, and are never
//     logged. Access reports made in a session stay in its memory (for the
//     download links) and go with it.
package console
