package server

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// pathParam matches a {name} wildcard of a route pattern.
var pathParam = regexp.MustCompile(`\{([a-zA-Z_]+)\.*\}`)

// OpenAPI returns the API as an OpenAPI 3.1 document generated from the
// route table, so that it cannot list a route that is not served or miss
// one that is. Bodies are described in words, with schemas for the shapes
// clients depend on (errors and Segment messages).
func OpenAPI() map[string]any {
	paths := map[string]any{}
	for _, rt := range Routes() {
		item, _ := paths[rt.Pattern].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.Pattern] = item
		}
		item[strings.ToLower(rt.Method)] = operation(rt)
	}
	errRef := map[string]any{"$ref": "#/components/schemas/Error"}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Custody HTTP API",
			"version":     "1",
			"description": "Segment-compatible ingestion and the admin API of Custody. Roles per operation are in x-custody-roles; docs/http-api.md has the same table.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"writeKey": map[string]any{"type": "http", "scheme": "basic",
					"description": "an API key as the Basic user with an empty password (Segment SDKs)"},
				"apiKey": map[string]any{"type": "http", "scheme": "bearer",
					"description": "Authorization: Bearer cus_..."},
			},
			"schemas": map[string]any{
				"Error": map[string]any{
					"type":     "object",
					"required": []string{"error"},
					"properties": map[string]any{
						"error": map[string]any{"type": "string", "description": "what is wrong; names fields, never values"},
						"code":  map[string]any{"type": "string", "description": "machine-readable reason for ingestion errors"},
						"index": map[string]any{"type": "integer", "description": "position of the bad message in a batch"},
						"field": map[string]any{"type": "string", "description": "JSON path of the bad field"},
					},
				},
				"Message": map[string]any{
					"type":        "object",
					"description": "a Segment message; userId or anonymousId is required",
					"properties": map[string]any{
						"type": map[string]any{"type": "string"}, "messageId": map[string]any{"type": "string"},
						"userId": map[string]any{"type": "string"}, "anonymousId": map[string]any{"type": "string"},
						"previousId": map[string]any{"type": "string"}, "groupId": map[string]any{"type": "string"},
						"event": map[string]any{"type": "string"}, "name": map[string]any{"type": "string"},
						"category": map[string]any{"type": "string"}, "traits": map[string]any{"type": "object"},
						"properties": map[string]any{"type": "object"}, "context": map[string]any{"type": "object"},
						"integrations": map[string]any{"type": "object"},
						"timestamp":    map[string]any{"type": "string", "format": "date-time"},
						"sentAt":       map[string]any{"type": "string", "format": "date-time"},
					},
				},
				"Batch": map[string]any{
					"type":     "object",
					"required": []string{"batch"},
					"properties": map[string]any{
						"batch":        map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Message"}},
						"context":      map[string]any{"type": "object"},
						"integrations": map[string]any{"type": "object"},
						"sentAt":       map[string]any{"type": "string", "format": "date-time"},
					},
				},
			},
			"responses": map[string]any{
				"BadRequest":   response("bad input; nothing of the request was stored", errRef),
				"Unauthorized": response("no key, or an unknown key", errRef),
				"Forbidden":    response("a key of a role that may not call this", errRef),
				"TooMany":      response("too many failed authentications from this address; see Retry-After", errRef),
			},
		},
	}
}

func response(desc string, schema map[string]any) map[string]any {
	r := map[string]any{"description": desc}
	if schema != nil {
		r["content"] = map[string]any{"application/json": map[string]any{"schema": schema}}
	}
	return r
}

func operation(rt Route) map[string]any {
	op := map[string]any{
		"operationId": operationID(rt),
		"summary":     rt.Summary,
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(rt.Pattern, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, q := range rt.Query {
		params = append(params, map[string]any{"name": q.Name, "in": "query", "description": q.Description, "schema": map[string]any{"type": "string"}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.Request != "" {
		schema := map[string]any{"type": "object"}
		switch {
		case rt.Pattern == "/v1/batch":
			schema = map[string]any{"$ref": "#/components/schemas/Batch"}
		case rt.Basic:
			schema = map[string]any{"$ref": "#/components/schemas/Message"}
		}
		ct := "application/json"
		if rt.Pattern == "/v1/admin/import" {
			ct, schema = "application/x-ndjson", map[string]any{"type": "string"}
		}
		op["requestBody"] = map[string]any{"description": rt.Request, "required": true,
			"content": map[string]any{ct: map[string]any{"schema": schema}}}
	}
	ct := "application/json"
	if rt.Pattern == "/metrics" {
		ct = "text/plain"
	}
	responses := map[string]any{
		strconv.Itoa(rt.Success): map[string]any{"description": rt.Response, "content": map[string]any{ct: map[string]any{}}},
	}
	if rt.Public() {
		op["security"] = []any{}
	} else {
		var roles []string
		for _, r := range rt.Roles {
			roles = append(roles, string(r))
		}
		op["x-custody-roles"] = roles
		sec := []any{map[string]any{"apiKey": []string{}}}
		if rt.Basic {
			sec = append(sec, map[string]any{"writeKey": []string{}})
		}
		op["security"] = sec
		responses["401"] = map[string]any{"$ref": "#/components/responses/Unauthorized"}
		responses["403"] = map[string]any{"$ref": "#/components/responses/Forbidden"}
		responses["429"] = map[string]any{"$ref": "#/components/responses/TooMany"}
		if rt.Method != http.MethodGet || rt.Query != nil {
			responses["400"] = map[string]any{"$ref": "#/components/responses/BadRequest"}
		}
	}
	op["responses"] = responses
	return op
}

// operationID is e.g. post_v1_admin_segments_name_eval.
func operationID(rt Route) string {
	id := strings.ToLower(rt.Method) + rt.Pattern
	return strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_").Replace(id)
}
