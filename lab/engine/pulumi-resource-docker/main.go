// Command pulumi-resource-docker is the Pulumi "docker" resource provider,
// rebuilt for citadel from the same upstream parts as @pulumi/docker 5.2.0
// (kreuzwerker/terraform-provider-docker at the commit pulumi-docker pins,
// bridged by pulumi-terraform-bridge), because the pulumi-docker provider
// module itself is not served by the module proxy reachable here. Not
// included: @pulumi/docker's native (non-Terraform) docker.Image resource.
// See engine/README.md.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	shimpkg "github.com/terraform-providers/terraform-provider-docker/shim"

	"citadel.local/engine/bridged"
)

// version is set with -ldflags "-X main.version=..." by engine/build.sh.
var version = "0.0.0-dev"

func main() {
	info := tfbridge.ProviderInfo{
		P:       shimv2.NewProvider(shimpkg.NewProvider(version)),
		Name:    "docker",
		Version: version,
		// @pulumi/docker's names for the two Terraform types it renames
		// (its own docker.Image is a native resource, not bridged).
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_image":  {Tok: "docker:index/remoteImage:RemoteImage"},
			"docker_config": {Tok: "docker:index/serviceConfig:ServiceConfig"},
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_image": {Tok: "docker:index/getRemoteImage:getRemoteImage"},
		},
	}
	bridged.ComputeTokens(&info, "docker", "docker_", "")
	// Like the published provider, a required "name" input is auto-named
	// (<resource name>-<random suffix>) when the program leaves it unset.
	info.SetAutonaming(255, "-")
	// ...except RemoteImage, whose name is the image reference (required in
	// the SDK too).
	if r := info.Resources["docker_image"]; r != nil {
		delete(r.Fields, "name")
	}
	tfbridge.Main("docker", version, info, bridged.MinimalSchema("docker", version))
}
