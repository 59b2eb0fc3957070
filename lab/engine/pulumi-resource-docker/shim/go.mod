// Local shim: a module under the upstream provider's path, so it may import
// the provider's internal package (Go's internal-package rule).
module github.com/terraform-providers/terraform-provider-docker/shim

go 1.25.8

require github.com/terraform-providers/terraform-provider-docker v0.0.0-20260916201441-96d331c98ff4
