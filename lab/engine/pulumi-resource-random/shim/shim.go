// Package shim exposes the upstream Terraform random provider (a
// terraform-plugin-framework provider kept in an internal package).
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	p "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the upstream provider.
func NewProvider() provider.Provider { return p.New() }
