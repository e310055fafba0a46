// Package custody is the module root of Custody, a privacy-first,
// self-hosted customer data platform. The code lives in core/ (the service
// and its leaf packages), identity/, policies/, segments/, privacy/ and
// cmd/custody; layering_test.go enforces the layering of DESIGN.md §1.
package custody
