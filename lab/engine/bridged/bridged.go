// Package bridged holds the little ProviderInfo plumbing shared by the
// Terraform-bridged providers that citadel rebuilds from upstream parts.
package bridged

import (
	"encoding/json"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
)

// ComputeTokens maps every Terraform resource and data source of info.P not
// already in info to the standard Pulumi token in module "index" of pkg,
// with the bridge's own token strategy (and its default fixups): tfPrefix is
// cut from the Terraform name and namePrefix put before the Pulumi name.
// With ("hcloud", "hcloud_", "") hcloud_ssh_key becomes
// hcloud:index/sshKey:SshKey and the data source hcloud_image
// hcloud:index/getImage:getImage; with ("random", "random_", "Random")
// random_password becomes random:index/randomPassword:RandomPassword.
func ComputeTokens(info *tfbridge.ProviderInfo, pkg, tfPrefix, namePrefix string) {
	if info.MetadataInfo == nil {
		info.MetadataInfo = tfbridge.NewProviderMetadata(nil)
	}
	std := tokens.MakeStandard(pkg)
	info.MustComputeTokens(tokens.SingleModule(tfPrefix, "index", func(module, name string) (string, error) {
		return std(module, namePrefix+name)
	}))
}

// MinimalSchema is the package schema served by GetSchema: name and version
// only. The engine does not need more to run programs; SDK generation does,
// and is not what these rebuilt providers are for.
func MinimalSchema(pkg, version string) []byte {
	b, err := json.Marshal(map[string]string{"name": pkg, "version": version})
	if err != nil {
		panic(err)
	}
	return b
}
