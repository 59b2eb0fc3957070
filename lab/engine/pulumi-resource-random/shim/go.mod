// Local shim: a module under the upstream provider's path, so it may import
// the provider's internal package (Go's internal-package rule).
module github.com/terraform-providers/terraform-provider-random/shim

go 1.25.8

require github.com/terraform-providers/terraform-provider-random v1.3.2-0.20260824155315-e1092b0cfc07
