//go:build tools

// Package tools pins the Pulumi CLI main package so `go mod tidy` keeps its
// whole dependency graph in go.mod/go.sum. build.sh runs
// `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` from this module.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
