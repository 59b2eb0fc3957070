package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	p "github.com/pulumi/pulumi-go-provider"
)

// Logging says which of a command's output streams are echoed to the
// Pulumi log: stdout, stderr, stdoutAndStderr (default) or none.
type Logging string

const (
	LogStdout          Logging = "stdout"
	LogStderr          Logging = "stderr"
	LogStdoutAndStderr Logging = "stdoutAndStderr"
	LogNone            Logging = "none"
)

func logFlags(l *Logging) (stdout, stderr bool, err error) {
	if l == nil {
		return true, true, nil
	}
	switch *l {
	case LogStdout:
		return true, false, nil
	case LogStderr:
		return false, true, nil
	case LogStdoutAndStderr, "":
		return true, true, nil
	case LogNone:
		return false, false, nil
	}
	return false, false, fmt.Errorf("logging must be one of stdout, stderr, stdoutAndStderr, none; got %q", *l)
}

// CommonArgs are the inputs shared by local.Command and remote.Command.
type CommonArgs struct {
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Triggers               []any             `pulumi:"triggers,optional" provider:"replaceOnChanges"`
	Logging                *Logging          `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

// CommonOutputs are the outputs every command resource adds to its inputs.
type CommonOutputs struct {
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

// runner runs one command text with the given extra environment and returns
// its captured stdout and stderr (trailing newline trimmed, as upstream).
type runner func(ctx context.Context, command string, env map[string]string,
	stdin *string, stdout, stderr io.Writer) error

func runCommand(ctx context.Context, run runner, command string, args CommonArgs,
	extraEnv map[string]string,
) (CommonOutputs, error) {
	logOut, logErr, err := logFlags(args.Logging)
	if err != nil {
		return CommonOutputs{}, err
	}
	env := map[string]string{}
	for k, v := range args.Environment {
		env[k] = v
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	logger := p.GetLogger(ctx)
	var outBuf, errBuf bytes.Buffer
	outW := newLineLogger(&outBuf, logOut, logger.InfoStatus)
	errW := newLineLogger(&errBuf, logErr, logger.InfoStatus)
	runErr := run(ctx, command, env, args.Stdin, outW, errW)
	outW.flush()
	errW.flush()
	res := CommonOutputs{
		Stdout: strings.TrimSuffix(outBuf.String(), "\n"),
		Stderr: strings.TrimSuffix(errBuf.String(), "\n"),
	}
	if runErr != nil {
		return res, fmt.Errorf("%w: running %q:\nStdout:\n%s\nStderr:\n%s", runErr, commandSummary(command), res.Stdout, res.Stderr)
	}
	return res, nil
}

// commandSummary shortens a long (multi-line) command for error messages: the whole script is in
// the resource's inputs already, and repeating hundreds of lines buries the stderr that says what
// went wrong.
func commandSummary(command string) string {
	lines := strings.Split(command, "\n")
	if len(lines) <= 3 {
		return command
	}
	return strings.Join(lines[:3], "\n") + fmt.Sprintf("\n... (%d more lines)", len(lines)-3)
}

// previousOutputEnv is what upstream exposes to update and delete commands.
func previousOutputEnv(prev CommonOutputs) map[string]string {
	return map[string]string{
		"PULUMI_COMMAND_STDOUT": prev.Stdout,
		"PULUMI_COMMAND_STDERR": prev.Stderr,
	}
}

// updateOutputs runs a command resource's update command — its create command when it has none, as
// upstream does — and returns the new outputs. In a preview, or with nothing to run, the previous
// outputs stay.
func updateOutputs(ctx context.Context, dryRun bool, run runner, args CommonArgs, prev CommonOutputs) (CommonOutputs, error) {
	cmd := args.Update
	if cmd == nil {
		cmd = args.Create
	}
	if dryRun || cmd == nil {
		return prev, nil
	}
	var env map[string]string
	if addPrevious(args) {
		env = previousOutputEnv(prev)
	}
	return runCommand(ctx, run, *cmd, args, env)
}

// deleteCommand runs a command resource's delete command, if it has one, with the last outputs in
// its environment.
func deleteCommand(ctx context.Context, run runner, args CommonArgs, prev CommonOutputs) error {
	if args.Delete == nil {
		return nil
	}
	if _, err := runCommand(ctx, run, *args.Delete, args, previousOutputEnv(prev)); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

func addPrevious(args CommonArgs) bool {
	return args.AddPreviousOutputInEnv == nil || *args.AddPreviousOutputInEnv
}

// newID returns "<name>-<8 hex>" like other Pulumi native providers.
func newID(name string) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return name + "-" + hex.EncodeToString(b), nil
}

// lineLogger tees a stream into a buffer and, optionally, line by line into
// the Pulumi log.
type lineLogger struct {
	mu   sync.Mutex
	buf  *bytes.Buffer
	log  func(string)
	on   bool
	part []byte
}

func newLineLogger(buf *bytes.Buffer, on bool, log func(string)) *lineLogger {
	return &lineLogger{buf: buf, on: on, log: log}
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	if !l.on {
		return len(b), nil
	}
	l.part = append(l.part, b...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		l.log(string(l.part[:i]))
		l.part = l.part[i+1:]
	}
	return len(b), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.on && len(l.part) > 0 {
		l.log(string(l.part))
	}
	l.part = nil
}

// sortedEnv renders an environment map deterministically.
func sortedEnv(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}
