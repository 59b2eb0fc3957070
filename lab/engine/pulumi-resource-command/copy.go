package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pkg/sftp"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/infer/types"
)

// CopyToRemote is command:remote:CopyToRemote.
type CopyToRemote struct{}

// CopyToRemoteArgs are its inputs.
type CopyToRemoteArgs struct {
	Connection Connection           `pulumi:"connection" provider:"secret"`
	Source     types.AssetOrArchive `pulumi:"source" provider:"replaceOnChanges"`
	RemotePath string               `pulumi:"remotePath" provider:"replaceOnChanges"`
	Triggers   []any                `pulumi:"triggers,optional" provider:"replaceOnChanges"`
}

// CopyToRemoteState is its state (the inputs).
type CopyToRemoteState struct {
	CopyToRemoteArgs
}

func (*CopyToRemote) Annotate(a infer.Annotator) {
	a.SetToken("remote", "CopyToRemote")
	a.Describe(&CopyToRemote{}, "Copy an Asset or Archive to a remote host.")
}

func (*CopyToRemote) Create(
	ctx context.Context, req infer.CreateRequest[CopyToRemoteArgs],
) (infer.CreateResponse[CopyToRemoteState], error) {
	id, err := newID(req.Name)
	if err != nil {
		return infer.CreateResponse[CopyToRemoteState]{}, err
	}
	state := CopyToRemoteState{req.Inputs}
	if !req.DryRun {
		if err := copyToRemote(ctx, req.Inputs); err != nil {
			return infer.CreateResponse[CopyToRemoteState]{}, err
		}
	}
	return infer.CreateResponse[CopyToRemoteState]{ID: id, Output: state}, nil
}

func (*CopyToRemote) Update(
	ctx context.Context, req infer.UpdateRequest[CopyToRemoteArgs, CopyToRemoteState],
) (infer.UpdateResponse[CopyToRemoteState], error) {
	if !req.DryRun {
		if err := copyToRemote(ctx, req.Inputs); err != nil {
			return infer.UpdateResponse[CopyToRemoteState]{}, err
		}
	}
	return infer.UpdateResponse[CopyToRemoteState]{Output: CopyToRemoteState{req.Inputs}}, nil
}

// Delete leaves the copied files in place, as upstream does.
func (*CopyToRemote) Delete(context.Context, infer.DeleteRequest[CopyToRemoteState]) (infer.DeleteResponse, error) {
	return infer.DeleteResponse{}, nil
}

func copyToRemote(ctx context.Context, in CopyToRemoteArgs) error {
	client, err := in.Connection.dial(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	sc, err := sftp.NewClient(client)
	if err != nil {
		return fmt.Errorf("starting sftp: %w", err)
	}
	defer sc.Close()

	switch {
	case in.Source.Asset != nil:
		a := in.Source.Asset
		dst := in.RemotePath
		if st, err := sc.Stat(dst); err == nil && st.IsDir() {
			if !a.IsPath() {
				return errors.New("remotePath is a directory: a text asset needs a file name as remotePath")
			}
			dst = path.Join(dst, filepath.Base(a.Path))
		}
		switch {
		case a.IsPath():
			return uploadFile(sc, a.Path, dst)
		case a.IsText():
			return writeRemote(sc, strings.NewReader(a.Text), dst, 0o644)
		default:
			return errors.New("only file and string assets are supported")
		}
	case in.Source.Archive != nil:
		ar := in.Source.Archive
		if !ar.IsPath() {
			return errors.New("only FileArchive sources of a directory are supported")
		}
		st, err := os.Stat(ar.Path)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("archive %s is not a directory (archive files are not supported)", ar.Path)
		}
		dst := in.RemotePath
		if rst, err := sc.Stat(dst); err == nil && rst.IsDir() {
			dst = path.Join(dst, filepath.Base(ar.Path))
		}
		return uploadDir(sc, ar.Path, dst)
	}
	return errors.New("source must be an asset or an archive")
}

func uploadFile(sc *sftp.Client, local, remote string) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return writeRemote(sc, f, remote, st.Mode().Perm())
}

func writeRemote(sc *sftp.Client, r io.Reader, remote string, mode os.FileMode) error {
	f, err := sc.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("opening %s on the remote host: %w", remote, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", remote, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return sc.Chmod(remote, mode)
}

func uploadDir(sc *sftp.Client, local, remote string) error {
	return filepath.Walk(local, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(local, p)
		if err != nil {
			return err
		}
		dst := path.Join(remote, filepath.ToSlash(rel))
		if info.IsDir() {
			if err := sc.MkdirAll(dst); err != nil {
				return fmt.Errorf("creating %s: %w", dst, err)
			}
			return sc.Chmod(dst, info.Mode().Perm())
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		return uploadFile(sc, p, dst)
	})
}

// CopyFile is command:remote:CopyFile (deprecated upstream in favour of
// CopyToRemote, kept for SDK compatibility).
type CopyFile struct{}

// CopyFileArgs are its inputs.
type CopyFileArgs struct {
	Connection Connection `pulumi:"connection" provider:"secret"`
	LocalPath  string     `pulumi:"localPath"`
	RemotePath string     `pulumi:"remotePath"`
	Triggers   []any      `pulumi:"triggers,optional" provider:"replaceOnChanges"`
}

// CopyFileState is its state (the inputs).
type CopyFileState struct {
	CopyFileArgs
}

func (*CopyFile) Annotate(a infer.Annotator) {
	a.SetToken("remote", "CopyFile")
	a.Describe(&CopyFile{}, "Copy a local file to a remote host.")
}

func (*CopyFile) Create(
	ctx context.Context, req infer.CreateRequest[CopyFileArgs],
) (infer.CreateResponse[CopyFileState], error) {
	id, err := newID(req.Name)
	if err != nil {
		return infer.CreateResponse[CopyFileState]{}, err
	}
	if !req.DryRun {
		if err := copyFile(ctx, req.Inputs); err != nil {
			return infer.CreateResponse[CopyFileState]{}, err
		}
	}
	return infer.CreateResponse[CopyFileState]{ID: id, Output: CopyFileState{req.Inputs}}, nil
}

func (*CopyFile) Update(
	ctx context.Context, req infer.UpdateRequest[CopyFileArgs, CopyFileState],
) (infer.UpdateResponse[CopyFileState], error) {
	if !req.DryRun {
		if err := copyFile(ctx, req.Inputs); err != nil {
			return infer.UpdateResponse[CopyFileState]{}, err
		}
	}
	return infer.UpdateResponse[CopyFileState]{Output: CopyFileState{req.Inputs}}, nil
}

func (*CopyFile) Delete(context.Context, infer.DeleteRequest[CopyFileState]) (infer.DeleteResponse, error) {
	return infer.DeleteResponse{}, nil
}

func copyFile(ctx context.Context, in CopyFileArgs) error {
	client, err := in.Connection.dial(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	sc, err := sftp.NewClient(client)
	if err != nil {
		return fmt.Errorf("starting sftp: %w", err)
	}
	defer sc.Close()
	return uploadFile(sc, in.LocalPath, in.RemotePath)
}
