// Package demo generates a realistic, fully synthetic ecommerce store's
// tracking data for `custody demo` and for benchmarks.
//
// It owns the simulation only: personas (Person), their behaviour over a
// period, and the rendering of that behaviour as Segment-spec messages
// (https://segment.com/docs/connections/spec/ and the Ecommerce spec v2) in
// JSON Lines, sorted by timestamp (Generate). Ingesting the output and
// printing a report is the caller's job.
//
// # Synthetic identifiers only
//
// Nobody in the output is real. Names come from a mixed international list;
// emails are first.last<n>-style on reserved example/test domains
// (example.com, example.org, example.net, mail.test); phone numbers are
// invented E.164 numbers; IP addresses are in the RFC 5737 documentation
// ranges; every URL and referrer is on a reserved example domain. User ids,
// anonymous ids, message ids, cart and order ids are derived from the seed.
//
// # What is simulated
//
// Options.Customers people with personas (region mix about EU 35%, UK 25%,
// US-CA 15%, other US states 20%, other 5%) plus 0.7 times as many
// anonymous visitors who never identify, so that roughly 40% of sessions
// never become attributable to a person. Customers fall into archetypes: browsers (some sign up),
// cart abandoners, one-time buyers, repeat buyers, a few VIPs with many
// orders and at-risk buyers whose last order is 90–180 days before Now
// (bounded by the period: with the default 120 days they are 90–117 days
// ago; give Days e.g. 400 for a longer history). Each person uses 1–3
// devices (anonymous ids); events carry only the anonymousId until the
// person signs up or logs in on that device, which sends identify with the
// traits email, first_name, last_name, phone (for some), address{city,
// country, state (US)}, created_at; afterwards the device's events carry
// both ids. Sessions are page views plus Products Searched, Product List
// Viewed, Product Viewed, Product Added, Cart Viewed, Checkout Started,
// Coupon Applied and Order Completed (about a quarter of orders with a
// coupon, currency EUR/GBP/USD by region, totals consistent:
// total = revenue + tax + shipping). About 5% of orders get a server-side
// Order Refunded some days later. Browser messages carry context.page,
// userAgent, ip, locale and library; some carry context.campaign,
// context.location and context.consent.categoryPreferences.
//
// # A campaign with a holdout
//
// Respond simulates the weeks after a campaign: told which exported people
// were treated and which held out (Custody's keyed split decides, not the
// generator), it writes the orders they place: a base rate for everyone,
// plus a lift for the treated (with the win-back coupon and the campaign's
// utm fields), so that a segment report can measure the difference.
//
// # Determinism and cost
//
// The output is a pure function of Options (DefaultOptions fixes Now to the
// start of the current UTC day). Every person owns a random stream seeded
// from the seed and their index, plans their sessions up front and renders
// each session only when the merge reaches it, so memory grows with the
// number of people, not of messages (about 50 MB of heap for 100,000
// customers). 3000 customers produce about 70k messages (~60 MB, messages
// 300–1600 bytes) in about a tenth of a second.
package demo
