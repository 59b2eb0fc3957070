package main

// The API's wire conventions: bearer-token auth, the error body ({"error": {code, message,
// details}}), pagination (page, per_page, meta.pagination) and label selectors.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// apiError is an answer in the API's error form.
type apiError struct {
	status  int
	code    string
	message string
	details any
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

type fieldError struct {
	Name     string   `json:"name"`
	Messages []string `json:"messages"`
}

// invalidInput is the 422 the API sends for a request it cannot accept, naming the field.
func invalidInput(field, message string) *apiError {
	return &apiError{status: 422, code: "invalid_input", message: fmt.Sprintf("invalid input in field '%s'", field),
		details: map[string]any{"fields": []fieldError{{Name: field, Messages: []string{message}}}}}
}

func notFound(what string) *apiError {
	return &apiError{status: 404, code: "not_found", message: what + " not found"}
}

func uniqueness(message string) *apiError {
	return &apiError{status: 409, code: "uniqueness_error", message: message}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

func writeError(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{status: 500, code: "server_error", message: err.Error()}
	}
	raw := json.RawMessage("null")
	if e.details != nil {
		raw, _ = json.Marshal(e.details)
	}
	writeJSON(w, e.status, schema.ErrorResponse{Error: schema.Error{Code: e.code, Message: e.message, DetailsRaw: raw}})
}

// decode reads a JSON request body; a body that is not JSON of the right shape is a json_error.
func decode(r *http.Request, into any) error {
	if err := json.NewDecoder(r.Body).Decode(into); err != nil {
		return &apiError{status: 400, code: "json_error", message: "request body is not valid JSON: " + err.Error()}
	}
	return nil
}

const (
	defaultPerPage = 25
	maxPerPage     = 50
)

// paginate returns one page of items and its meta, as the API pages every list.
func paginate[T any](q url.Values, items []T) ([]T, schema.Meta, error) {
	page, perPage := 1, defaultPerPage
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, schema.Meta{}, invalidInput("page", "must be a positive integer")
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPerPage {
			return nil, schema.Meta{}, invalidInput("per_page", fmt.Sprintf("must be an integer from 1 to %d", maxPerPage))
		}
		perPage = n
	}
	total := len(items)
	last := max(1, (total+perPage-1)/perPage)
	p := &schema.MetaPagination{Page: page, PerPage: perPage, LastPage: last, TotalEntries: total}
	if page > 1 {
		p.PreviousPage = page - 1
	}
	if page < last {
		p.NextPage = page + 1
	}
	from := min(total, (page-1)*perPage)
	to := min(total, from+perPage)
	return items[from:to], schema.Meta{Pagination: p}, nil
}

// sortedIDs returns a map's keys in ascending order (lists come back by ID).
func sortedIDs[V any](m map[int64]V) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// labelSelector is the API's label_selector: comma-separated "k=v", "k==v", "k!=v", "k", "!k".
type labelSelector []func(map[string]string) bool

func parseLabelSelector(s string) (labelSelector, error) {
	var sel labelSelector
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		switch {
		case strings.Contains(term, "!="):
			k, v, _ := strings.Cut(term, "!=")
			sel = append(sel, func(l map[string]string) bool { return l[k] != v })
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(strings.Replace(term, "==", "=", 1), "=")
			sel = append(sel, func(l map[string]string) bool { x, ok := l[k]; return ok && x == v })
		case strings.HasPrefix(term, "!") && len(term) > 1:
			k := term[1:]
			sel = append(sel, func(l map[string]string) bool { _, ok := l[k]; return !ok })
		case term != "" && !strings.ContainsAny(term, " ()"):
			sel = append(sel, func(l map[string]string) bool { _, ok := l[term]; return ok })
		default:
			return nil, invalidInput("label_selector", "unsupported selector term "+strconv.Quote(term))
		}
	}
	return sel, nil
}

func (sel labelSelector) matches(labels map[string]string) bool {
	for _, f := range sel {
		if !f(labels) {
			return false
		}
	}
	return true
}

// validLabels checks label keys and values the way the API does (length and characters).
func validLabels(labels map[string]string) error {
	for k, v := range labels {
		if k == "" || len(k) > 63 || len(v) > 63 || strings.ContainsAny(k+v, " \t\n,=!") {
			return invalidInput("labels", fmt.Sprintf("invalid label %q=%q", k, v))
		}
	}
	return nil
}
