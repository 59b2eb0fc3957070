package main

// RunPlugin against stand-in Node scripts: a fake @pulumi/pulumi in a temp
// node_modules whose cmd/run-plugin and cmd/run-policy-pack report what they
// were given. The analyzer case plays the engine: it reads the proxy's port
// from the plugin's first stdout line, handshakes, sends ConfigureStack, and
// checks that the call reaches the pack (a Go analyzer the script names as its
// port) and that the pack saw the stack as environment variables.
//
// Run: cd lab/engine/pulumi-language-nodejs && go test ./...

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const runPluginJS = `
process.stdout.write(JSON.stringify({
  argv: process.argv.slice(2), cwd: process.cwd(),
  marker: process.env.CITADEL_TEST_MARKER, ts: process.env.PULUMI_NODEJS_TYPESCRIPT || "",
}) + "\n");
process.stderr.write("plugin says hello on stderr\n");
process.exit(3);
`

const runPolicyPackJS = `
process.stdout.write(process.env.FAKE_ANALYZER_PORT + "\n");
process.stderr.write(JSON.stringify({
  argv: process.argv.slice(2), cwd: process.cwd(),
  org: process.env.PULUMI_NODEJS_ORGANIZATION, project: process.env.PULUMI_NODEJS_PROJECT,
  stack: process.env.PULUMI_NODEJS_STACK, dryRun: process.env.PULUMI_NODEJS_DRY_RUN,
  config: process.env.PULUMI_CONFIG, ts: process.env.PULUMI_NODEJS_TYPESCRIPT || "",
}) + "\n");
setInterval(() => {}, 1000); // serves until the engine goes away
`

// fakeSDK writes node_modules/@pulumi/pulumi/cmd/{run-plugin,run-policy-pack} under root.
func fakeSDK(t *testing.T, root string) {
	t.Helper()
	for mod, js := range map[string]string{"run-plugin": runPluginJS, "run-policy-pack": runPolicyPackJS} {
		dir := filepath.Join(root, "node_modules", "@pulumi", "pulumi", "cmd", mod)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "index.js"), []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH")
	}
}

// startHost serves a nodeHost on a free port and returns a client for it.
func startHost(t *testing.T) pulumirpc.LanguageRuntimeClient {
	t.Helper()
	cancel := make(chan bool)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, &nodeHost{defaults: runtimeOptions{typescript: true}})
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(cancel); <-handle.Done })
	return pulumirpc.NewLanguageRuntimeClient(dial(t, handle.Port))
}

func dial(t *testing.T, port int) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// pluginOutput collects a RunPlugin stream: stdout and stderr as pipes, the exit code at the end.
type pluginOutput struct {
	stdout, stderr *io.PipeReader
	done           chan struct{}
	exitCode       int32
	err            error
}

func collect(stream pulumirpc.LanguageRuntime_RunPluginClient) *pluginOutput {
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	o := &pluginOutput{stdout: outR, stderr: errR, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		defer outW.Close()
		defer errW.Close()
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				o.err = err
				return
			}
			switch v := msg.Output.(type) {
			case *pulumirpc.RunPluginResponse_Stdout:
				_, _ = outW.Write(v.Stdout)
			case *pulumirpc.RunPluginResponse_Stderr:
				_, _ = errW.Write(v.Stderr)
			case *pulumirpc.RunPluginResponse_Exitcode:
				o.exitCode = v.Exitcode
			}
		}
	}()
	return o
}

func TestRunPluginStreamsOutputArgsAndExitCode(t *testing.T) {
	requireNode(t)
	root := t.TempDir()
	fakeSDK(t, root)
	pluginDir := filepath.Join(root, "plugin")
	pwd := filepath.Join(root, "work")
	for _, d := range []string{pluginDir, pwd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts, _ := structpb.NewStruct(map[string]any{"typescript": false})
	client := startHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := client.RunPlugin(ctx, &pulumirpc.RunPluginRequest{
		Pwd:  pwd,
		Args: []string{"a", "b c"},
		Env:  []string{"PATH=" + os.Getenv("PATH"), "CITADEL_TEST_MARKER=passed-through"},
		Kind: "resource",
		Info: &pulumirpc.ProgramInfo{RootDirectory: pluginDir, ProgramDirectory: pluginDir, EntryPoint: ".", Options: opts},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := collect(stream)
	var stdout, stderr []byte
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stdout, _ = io.ReadAll(o.stdout) }()
	go func() { defer wg.Done(); stderr, _ = io.ReadAll(o.stderr) }()
	wg.Wait()
	<-o.done
	if o.err != nil {
		t.Fatalf("stream: %v", o.err)
	}
	if o.exitCode != 3 {
		t.Errorf("exit code %d, want 3", o.exitCode)
	}
	if !strings.Contains(string(stderr), "plugin says hello on stderr") {
		t.Errorf("stderr not streamed: %q", stderr)
	}
	var got struct {
		Argv   []string `json:"argv"`
		Cwd    string   `json:"cwd"`
		Marker string   `json:"marker"`
		TS     string   `json:"ts"`
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	if strings.Join(got.Argv, "|") != pluginDir+"|a|b c" {
		t.Errorf("argv %q, want the plugin directory then the engine's args", got.Argv)
	}
	if got.Cwd != pwd {
		t.Errorf("cwd %q, want the engine's working directory %q", got.Cwd, pwd)
	}
	if got.Marker != "passed-through" {
		t.Errorf("the engine's environment did not reach the plugin: %q", got.Marker)
	}
	if got.TS != "" {
		t.Errorf("typescript: false in the runtime options, yet PULUMI_NODEJS_TYPESCRIPT=%q", got.TS)
	}
}

// fakeAnalyzer stands for the policy pack's own gRPC server.
type fakeAnalyzer struct {
	pulumirpc.UnimplementedAnalyzerServer
	mu        sync.Mutex
	configure *pulumirpc.AnalyzerStackConfigureRequest
}

func (a *fakeAnalyzer) ConfigureStack(
	_ context.Context, req *pulumirpc.AnalyzerStackConfigureRequest,
) (*pulumirpc.AnalyzerStackConfigureResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.configure = req
	return &pulumirpc.AnalyzerStackConfigureResponse{}, nil
}

func (a *fakeAnalyzer) GetAnalyzerInfo(context.Context, *emptypb.Empty) (*pulumirpc.AnalyzerInfo, error) {
	return &pulumirpc.AnalyzerInfo{Name: "fake-pack", Version: "1.0.0"}, nil
}

func TestRunPluginAnalyzerProxiesThePolicyPack(t *testing.T) {
	requireNode(t)
	root := t.TempDir()
	fakeSDK(t, root)
	packDir := filepath.Join(root, "policy")
	if err := os.MkdirAll(packDir, 0o755); err != nil {
		t.Fatal(err)
	}

	pack := &fakeAnalyzer{}
	cancelPack := make(chan bool)
	packHandle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelPack,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterAnalyzerServer(srv, pack)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(cancelPack); <-packHandle.Done }()

	client := startHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := client.RunPlugin(ctx, &pulumirpc.RunPluginRequest{
		Pwd:  root, // the engine's cwd; a pack runs in its own directory regardless
		Args: []string{"127.0.0.1:1"},
		Env:  []string{"PATH=" + os.Getenv("PATH"), "FAKE_ANALYZER_PORT=" + strconv.Itoa(packHandle.Port)},
		Kind: "analyzer",
		Info: &pulumirpc.ProgramInfo{RootDirectory: packDir, ProgramDirectory: packDir, EntryPoint: "."},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := collect(stream)

	// 1. The first stdout line is the proxy's port, printed before node starts.
	line, err := bufio.NewReader(o.stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no port line on stdout: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, o.stdout) }()
	proxyPort, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("first stdout line %q is not a port", line)
	}
	analyzer := pulumirpc.NewAnalyzerClient(dial(t, proxyPort))

	// 2. What the engine does in NewPolicyAnalyzer: Handshake, ConfigureStack, then use it.
	if _, err := analyzer.Handshake(ctx, &pulumirpc.AnalyzerHandshakeRequest{EngineAddress: "127.0.0.1:1"}); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	cfg := &pulumirpc.AnalyzerStackConfigureRequest{
		Organization: "org", Project: "citadel", Stack: "prod", DryRun: true,
		Config: map[string]string{"citadel:domain": "example.org"},
	}
	if _, err := analyzer.ConfigureStack(ctx, cfg); err != nil {
		t.Fatalf("configure stack: %v", err)
	}
	info, err := analyzer.GetAnalyzerInfo(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatalf("GetAnalyzerInfo through the proxy: %v", err)
	}
	if info.GetName() != "fake-pack" {
		t.Errorf("proxied analyzer name %q", info.GetName())
	}
	pack.mu.Lock()
	forwarded := pack.configure
	pack.mu.Unlock()
	if forwarded == nil || forwarded.GetStack() != "prod" {
		t.Errorf("ConfigureStack not forwarded to the pack: %v", forwarded)
	}

	// 3. The pack saw its args, directory and the stack as environment variables.
	report, err := bufio.NewReader(o.stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("no report on stderr: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, o.stderr) }()
	var got struct {
		Argv                                     []string
		Cwd, Org, Project, Stack, DryRun, Config string
		TS                                       string `json:"ts"`
	}
	if err := json.Unmarshal([]byte(report), &got); err != nil {
		t.Fatalf("stderr %q: %v", report, err)
	}
	if strings.Join(got.Argv, "|") != "127.0.0.1:1|"+packDir {
		t.Errorf("argv %q, want the engine's args then the pack directory", got.Argv)
	}
	if got.Cwd != packDir {
		t.Errorf("cwd %q, want the pack directory %q", got.Cwd, packDir)
	}
	if got.Org != "org" || got.Project != "citadel" || got.Stack != "prod" || got.DryRun != "true" {
		t.Errorf("PULUMI_NODEJS_* not from ConfigureStack: %+v", got)
	}
	if got.Config != `{"citadel:domain":"example.org"}` {
		t.Errorf("PULUMI_CONFIG %q", got.Config)
	}
	if got.TS != "true" {
		t.Errorf("TypeScript is the default, yet PULUMI_NODEJS_TYPESCRIPT=%q", got.TS)
	}

	// 4. The engine going away (its stream cancelled) stops the pack.
	cancel()
	select {
	case <-o.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not end after the engine cancelled it")
	}
}
