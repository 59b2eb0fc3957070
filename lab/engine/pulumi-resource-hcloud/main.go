// Command pulumi-resource-hcloud is the Pulumi "hcloud" resource provider,
// rebuilt for citadel from the same upstream parts as @pulumi/hcloud 1.41.0
// (terraform-provider-hcloud v1.68.0, an SDKv2 + plugin-framework provider,
// bridged by pulumi-terraform-bridge), because the pulumi-hcloud provider
// module itself is not served by the module proxy reachable here. See
// engine/README.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hetznercloud/terraform-provider-hcloud/hcloud"
	pfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/x/muxer"
	"github.com/pulumi/pulumi-terraform-bridge/v3/unstable/metadata"

	"citadel.local/engine/bridged"
)

// version is set with -ldflags "-X main.version=..." by engine/build.sh.
var version = "0.0.0-dev"

type dispatcher interface {
	ResolveDispatch(info *tfbridge.ProviderInfo) (muxer.DispatchTable, error)
}

func main() {
	ctx := context.Background()
	info := tfbridge.ProviderInfo{
		P:            pfbridge.MuxShimWithPF(ctx, shimv2.NewProvider(hcloud.Provider()), hcloud.NewPluginProvider()),
		Name:         "hcloud",
		Version:      version,
		MetadataInfo: tfbridge.NewProviderMetadata(nil),
	}
	bridged.ComputeTokens(&info, "hcloud", "hcloud_", "")
	// Like the published provider, a required "name" input is auto-named
	// (<resource name>-<random suffix>) when the program leaves it unset.
	info.SetAutonaming(255, "-")

	// The dispatch table (which of the two muxed Terraform providers serves
	// which token) is normally precomputed by tfgen; compute it at start-up.
	d, ok := info.P.(dispatcher)
	if !ok {
		fmt.Fprintln(os.Stderr, "fatal: muxed provider shim cannot resolve its dispatch table")
		os.Exit(1)
	}
	table, err := d.ResolveDispatch(&info)
	if err == nil {
		err = metadata.Set(info.GetMetadata(), "mux", table)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal: computing the mux dispatch table: %v\n", err)
		os.Exit(1)
	}
	pfbridge.MainWithMuxer(ctx, "hcloud", info, bridged.MinimalSchema("hcloud", version))
}
