// Command pulumi-resource-command is a Pulumi "command" resource provider for
// citadel, compatible with the @pulumi/command 1.2.1 SDK: command:local:Command,
// command:remote:Command, command:remote:CopyToRemote and command:remote:CopyFile.
//
// It is a rewrite, not the upstream provider: the pulumi-command provider
// module is not served by the module proxy reachable from this project's
// machines (see engine/README.md). It keeps upstream's inputs, outputs and
// semantics for what citadel uses: create/update/delete commands, triggers
// that replace, environment, stdin, logging, PULUMI_COMMAND_STDOUT/STDERR of
// the previous run, SSH with password/key/agent, optional proxy (jump host)
// and hostKey pinning, and copying files and directories over SFTP.
// Not implemented: local.Command's assetPaths/archivePaths (rejected).
package main

import (
	"context"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
)

// version is set with -ldflags "-X main.version=..." by engine/build.sh.
var version = "0.0.0-dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println(version)
		return
	}
	prov, err := infer.NewProviderBuilder().
		WithNamespace("pulumi").
		WithDisplayName("Command").
		WithDescription("Run commands locally or over SSH (citadel rebuild, @pulumi/command 1.2.1 compatible).").
		WithResources(
			infer.Resource[*LocalCommand, LocalCommandArgs, LocalCommandState](&LocalCommand{}),
			infer.Resource[*RemoteCommand, RemoteCommandArgs, RemoteCommandState](&RemoteCommand{}),
			infer.Resource[*CopyToRemote, CopyToRemoteArgs, CopyToRemoteState](&CopyToRemote{}),
			infer.Resource[*CopyFile, CopyFileArgs, CopyFileState](&CopyFile{}),
		).
		Build()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal: %v\n", err)
		os.Exit(1)
	}
	if err := p.RunProvider(context.Background(), "command", version, prov); err != nil {
		fmt.Fprintf(os.Stderr, "fatal: %v\n", err)
		os.Exit(1)
	}
}
