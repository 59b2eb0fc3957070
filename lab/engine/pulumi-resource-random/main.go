// Command pulumi-resource-random is the Pulumi "random" resource provider,
// rebuilt for citadel from the same upstream parts as @pulumi/random 4.21.2
// (the Terraform random provider bridged by pulumi-terraform-bridge), because
// the pulumi-random provider module itself is not served by the module proxy
// reachable here. See engine/README.md.
package main

import (
	"context"
	_ "embed"

	pfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimpkg "github.com/terraform-providers/terraform-provider-random/shim"

	"citadel.local/engine/bridged"
)

// version is set with -ldflags "-X main.version=..." by engine/build.sh.
var version = "0.0.0-dev"

func main() {
	ctx := context.Background()
	p := pfbridge.ShimProviderWithContext(ctx, shimpkg.NewProvider())
	info := tfbridge.ProviderInfo{
		P:       p,
		Name:    "random",
		Version: version,
	}
	// @pulumi/random keeps the TF name whole: random_password ->
	// random:index/randomPassword:RandomPassword.
	bridged.ComputeTokens(&info, "random", "random_", "Random")
	pfbridge.Main(ctx, "random", info, pfbridge.ProviderMetadata{
		PackageSchema: bridged.MinimalSchema("random", version),
	})
}
