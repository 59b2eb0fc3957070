//go:build tools

// Package tools pins actionlint (the GitHub Actions workflow linter) as a dependency of this
// wrapper module, so go.mod/go.sum fix its version and every transitive module's hash;
// build.sh builds github.com/rhysd/actionlint/cmd/actionlint from it.
package tools

import _ "github.com/rhysd/actionlint/cmd/actionlint"
