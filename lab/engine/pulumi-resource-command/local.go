package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/pulumi/pulumi-go-provider/infer"
)

// LocalCommand is command:local:Command.
type LocalCommand struct{}

// LocalCommandArgs are its inputs.
type LocalCommandArgs struct {
	CommonArgs
	Dir          *string  `pulumi:"dir,optional"`
	Interpreter  []string `pulumi:"interpreter,optional"`
	AssetPaths   []string `pulumi:"assetPaths,optional"`
	ArchivePaths []string `pulumi:"archivePaths,optional"`
}

// LocalCommandState is its state: the inputs plus stdout and stderr.
type LocalCommandState struct {
	LocalCommandArgs
	CommonOutputs
}

func (*LocalCommand) Annotate(a infer.Annotator) {
	a.SetToken("local", "Command")
	a.Describe(&LocalCommand{}, "A local command to be executed.")
}

func (a *LocalCommandArgs) check() error {
	if len(a.AssetPaths) > 0 || len(a.ArchivePaths) > 0 {
		return errors.New("assetPaths/archivePaths are not supported by citadel's command provider")
	}
	return nil
}

func (a LocalCommandArgs) runner() runner {
	return func(ctx context.Context, command string, env map[string]string,
		stdin *string, stdout, stderr io.Writer,
	) error {
		interp := a.Interpreter
		if len(interp) == 0 {
			interp = []string{"/bin/sh", "-c"}
		}
		args := append(append([]string{}, interp[1:]...), command)
		cmd := exec.CommandContext(ctx, interp[0], args...) //nolint:gosec // running commands is the point
		if a.Dir != nil {
			cmd.Dir = *a.Dir
		}
		cmd.Env = append(os.Environ(), sortedEnv(env)...)
		if stdin != nil {
			cmd.Stdin = strings.NewReader(*stdin)
		}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		return cmd.Run()
	}
}

func (*LocalCommand) Create(
	ctx context.Context, req infer.CreateRequest[LocalCommandArgs],
) (infer.CreateResponse[LocalCommandState], error) {
	in := req.Inputs
	if err := in.check(); err != nil {
		return infer.CreateResponse[LocalCommandState]{}, err
	}
	id, err := newID(req.Name)
	if err != nil {
		return infer.CreateResponse[LocalCommandState]{}, err
	}
	state := LocalCommandState{LocalCommandArgs: in}
	if req.DryRun || in.Create == nil {
		return infer.CreateResponse[LocalCommandState]{ID: id, Output: state}, nil
	}
	out, err := runCommand(ctx, in.runner(), *in.Create, in.CommonArgs, nil)
	state.CommonOutputs = out
	if err != nil {
		return infer.CreateResponse[LocalCommandState]{}, err
	}
	return infer.CreateResponse[LocalCommandState]{ID: id, Output: state}, nil
}

func (*LocalCommand) Update(
	ctx context.Context, req infer.UpdateRequest[LocalCommandArgs, LocalCommandState],
) (infer.UpdateResponse[LocalCommandState], error) {
	in := req.Inputs
	if err := in.check(); err != nil {
		return infer.UpdateResponse[LocalCommandState]{}, err
	}
	state := LocalCommandState{LocalCommandArgs: in, CommonOutputs: req.State.CommonOutputs}
	out, err := updateOutputs(ctx, req.DryRun, in.runner(), in.CommonArgs, req.State.CommonOutputs)
	if err != nil {
		return infer.UpdateResponse[LocalCommandState]{}, err
	}
	state.CommonOutputs = out
	return infer.UpdateResponse[LocalCommandState]{Output: state}, nil
}

func (*LocalCommand) Delete(
	ctx context.Context, req infer.DeleteRequest[LocalCommandState],
) (infer.DeleteResponse, error) {
	st := req.State
	return infer.DeleteResponse{}, deleteCommand(ctx, st.runner(), st.CommonArgs, st.CommonOutputs)
}
