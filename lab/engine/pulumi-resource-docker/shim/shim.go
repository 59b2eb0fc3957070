// Package shim exposes the upstream Terraform docker provider
// (kreuzwerker/terraform-provider-docker, kept in an internal package).
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	p "github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns the upstream SDKv2 provider, which holds every resource
// and data source of @pulumi/docker except its native docker.Image.
func NewProvider(version string) *schema.Provider { return p.New(version)() }
