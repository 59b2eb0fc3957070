// Command pulumi-language-nodejs is a small Node.js language host for the
// Pulumi CLI, written for citadel because the upstream host
// (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3) is not
// served by the module proxy reachable from this project's machines (see
// engine/README.md).
//
// It implements the LanguageRuntime gRPC service the engine needs to run a
// Node.js/TypeScript program: it starts `node @pulumi/pulumi/cmd/run` (the
// launcher shipped in the @pulumi/pulumi npm package, which does the real
// work: TypeScript via ts-node, the resource monitor connection, ...) with the
// same flags and environment variables as the upstream host, and reports the
// resource plugins the program needs by reading the "pulumi" block of every
// package.json under node_modules, as upstream does. RunPlugin runs Node.js
// plugins, among them policy packs (`pulumi preview --policy-pack DIR`).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Exit code used by @pulumi/pulumi/cmd/run when it has already reported a
// user-actionable error (nodeJSProcessExitedAfterLoggingUserActionableMessage).
const exitCodeAlreadyReported = 32

func main() {
	tracing := flag.String("tracing", "", "emit tracing to a Zipkin-compatible tracing endpoint")
	flag.String("root", "", "project root directory (ignored; taken from the program info)")
	typescript := flag.Bool("typescript", true, "use ts-node to run TypeScript programs")
	tsconfig := flag.String("tsconfig", "", "path to tsconfig.json")
	nodeargs := flag.String("nodeargs", "", "arguments passed to node")
	flag.String("packagemanager", "", "package manager (only npm is supported)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	engineAddress := ""
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if engineAddress != "" {
		// Exit when the engine goes away, like every Pulumi plugin.
		go func() {
			if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
				fmt.Fprintf(os.Stderr, "could not start health check host RPC server: %v\n", err)
			}
		}()
	}

	host := &nodeHost{
		engineAddress: engineAddress,
		tracing:       *tracing,
		defaults: runtimeOptions{
			typescript: *typescript,
			tsconfig:   *tsconfig,
			nodeargs:   *nodeargs,
		},
	}
	cancelChan := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancelChan)
	}()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelChan,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal: could not start language host RPC server: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "fatal: language host RPC stopped serving: %v\n", err)
		os.Exit(1)
	}
}

type runtimeOptions struct {
	typescript bool
	tsconfig   string
	nodeargs   string
}

type nodeHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	engineAddress string
	tracing       string
	defaults      runtimeOptions
}

// options merges the runtime options of Pulumi.yaml (`runtime.options`) over
// the command-line defaults.
func (h *nodeHost) options(info *pulumirpc.ProgramInfo) runtimeOptions {
	opts := h.defaults
	if info == nil || info.GetOptions() == nil {
		return opts
	}
	m := info.GetOptions().AsMap()
	if v, ok := m["typescript"].(bool); ok {
		opts.typescript = v
	}
	if v, ok := m["tsconfig"].(string); ok {
		opts.tsconfig = v
	}
	if v, ok := m["nodeargs"].(string); ok {
		opts.nodeargs = v
	}
	return opts
}

func (h *nodeHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *nodeHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *nodeHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (h *nodeHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// pulumiPackage is the "pulumi" block of a resource provider SDK's package.json.
type pulumiPackage struct {
	Resource         bool   `json:"resource"`
	Name             string `json:"name"`
	Version          string `json:"version"`
	Server           string `json:"server"`
	Parameterization *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Value   []byte `json:"value"`
	} `json:"parameterization"`
}

type packageJSON struct {
	Name            string            `json:"name"`
	Version         string            `json:"version"`
	Pulumi          *pulumiPackage    `json:"pulumi"`
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
}

func readPackageJSON(path string) (*packageJSON, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p packageJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// findNodeModules returns the node_modules directory that Node would use for
// the program: the nearest one at or above the program directory.
func findNodeModules(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		nm := filepath.Join(d, "node_modules")
		if st, err := os.Stat(nm); err == nil && st.IsDir() {
			return nm
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// collectPackages walks node_modules (scoped packages and nested node_modules
// included) and returns every package that declares itself a Pulumi resource
// plugin, deduplicated by name and version.
func collectPackages(nodeModules string) ([]*pulumirpc.PackageDependency, error) {
	seen := map[string]*pulumirpc.PackageDependency{}
	visited := map[string]bool{}
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil || visited[real] || depth > 8 {
			return nil
		}
		visited[real] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			pkgDirs := []string{filepath.Join(dir, name)}
			if strings.HasPrefix(name, "@") {
				scoped, err := os.ReadDir(filepath.Join(dir, name))
				if err != nil {
					continue
				}
				pkgDirs = pkgDirs[:0]
				for _, s := range scoped {
					pkgDirs = append(pkgDirs, filepath.Join(dir, name, s.Name()))
				}
			}
			for _, pd := range pkgDirs {
				p, err := readPackageJSON(filepath.Join(pd, "package.json"))
				if err == nil && p.Pulumi != nil && p.Pulumi.Resource {
					dep, err := packageDependency(p)
					if err != nil {
						return err
					}
					seen[dep.Name+"@"+dep.Version] = dep
				}
				if err := walk(filepath.Join(pd, "node_modules"), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(nodeModules, 0); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*pulumirpc.PackageDependency, 0, len(keys))
	for _, k := range keys {
		out = append(out, seen[k])
	}
	return out, nil
}

func packageDependency(p *packageJSON) (*pulumirpc.PackageDependency, error) {
	name := p.Pulumi.Name
	if name == "" {
		// "@pulumi/aws" -> "aws", as upstream does.
		name = strings.TrimPrefix(p.Name, "@pulumi/")
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
	}
	ver := p.Pulumi.Version
	if ver == "" {
		ver = p.Version
	}
	if ver == "" {
		return nil, fmt.Errorf("package %s declares a Pulumi plugin without a version", p.Name)
	}
	if !strings.HasPrefix(ver, "v") {
		ver = "v" + ver
	}
	dep := &pulumirpc.PackageDependency{Name: name, Kind: "resource", Version: ver, Server: p.Pulumi.Server}
	if pz := p.Pulumi.Parameterization; pz != nil {
		pv := pz.Version
		if !strings.HasPrefix(pv, "v") {
			pv = "v" + pv
		}
		dep.Parameterization = &pulumirpc.PackageParameterization{Name: pz.Name, Version: pv, Value: pz.Value}
	}
	return dep, nil
}

func programDirectory(info *pulumirpc.ProgramInfo, fallback string) string {
	if info != nil && info.GetProgramDirectory() != "" {
		return info.GetProgramDirectory()
	}
	return fallback
}

func (h *nodeHost) GetRequiredPackages(
	_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	nm := findNodeModules(programDirectory(req.GetInfo(), "."))
	if nm == "" {
		return &pulumirpc.GetRequiredPackagesResponse{}, nil
	}
	pkgs, err := collectPackages(nm)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

func (h *nodeHost) GetRequiredPlugins(
	_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	nm := findNodeModules(programDirectory(req.GetInfo(), req.GetPwd()))
	if nm == "" {
		return &pulumirpc.GetRequiredPluginsResponse{}, nil
	}
	pkgs, err := collectPackages(nm)
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range pkgs {
		if p.Parameterization != nil {
			continue
		}
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server,
		})
	}
	return resp, nil
}

// locateModule resolves a module (e.g. @pulumi/pulumi/cmd/run) from dir with
// Node's own resolution, exactly as upstream does: node_modules at or above
// dir, then NODE_PATH.
func locateModule(ctx context.Context, nodeBin, mod, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, nodeBin, "-e", fmt.Sprintf("console.log(require.resolve(%q))", mod))
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("it looks like the Pulumi SDK has not been installed: could not resolve "+
			"%s from %s (run `npm install` there): %w", mod, dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func locateRunScript(ctx context.Context, nodeBin, dir string) (string, error) {
	return locateModule(ctx, nodeBin, "@pulumi/pulumi/cmd/run", dir)
}

func (h *nodeHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, "could not find `node` on PATH: install Node.js")
	}
	info := req.GetInfo()
	opts := h.options(info)
	dir := programDirectory(info, req.GetPwd())
	if dir == "" {
		dir, _ = os.Getwd()
	}
	runScript, err := locateRunScript(ctx, nodeBin, dir)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	var args []string
	if opts.nodeargs != "" {
		args = append(args, strings.Fields(opts.nodeargs)...)
	}
	args = append(args, runScript)
	if req.GetOrganization() != "" {
		args = append(args, "--organization="+req.GetOrganization())
	}
	if req.GetProject() != "" {
		args = append(args, "--project="+req.GetProject())
	}
	if info != nil && info.GetRootDirectory() != "" {
		args = append(args, "--root-directory="+info.GetRootDirectory())
	}
	if req.GetStack() != "" {
		args = append(args, "--stack="+req.GetStack())
	}
	if req.GetPwd() != "" {
		args = append(args, "--pwd="+req.GetPwd())
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	if req.GetParallel() > 1 {
		args = append(args, "--parallel="+strconv.Itoa(int(req.GetParallel())))
	}
	args = append(args, "--monitor="+req.GetMonitorAddress())
	if h.engineAddress != "" {
		args = append(args, "--engine="+h.engineAddress)
	}
	if h.tracing != "" {
		args = append(args, "--tracing="+h.tracing)
	}
	entry := "."
	if info != nil && info.GetEntryPoint() != "" {
		entry = info.GetEntryPoint()
	} else if req.GetProgram() != "" {
		entry = req.GetProgram()
	}
	if !filepath.IsAbs(entry) {
		entry = filepath.Join(dir, entry)
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	config := req.GetConfig()
	if config == nil {
		config = map[string]string{} // the SDK expects a JSON object, never null
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"PULUMI_CONFIG="+string(configJSON),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretJSON),
	)
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}

	cmd := exec.Command(nodeBin, args...) //nolint:gosec // the engine chose the program
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not start node: %v", err)}, nil
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGINT)
		runErr = <-done
	}
	if runErr != nil {
		var exitErr *exec.ExitError
		if errors.As(runErr, &exitErr) {
			code := exitErr.ExitCode()
			if code == exitCodeAlreadyReported {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", code)}, nil
		}
		return &pulumirpc.RunResponse{Error: runErr.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// Plugin kinds the engine runs through RunPlugin (apitype.AnalyzerPlugin is
// "analyzer"; resource/converter/tool plugins written in Node.js use run-plugin).
const kindAnalyzer = "analyzer"

// RunPlugin runs a plugin written in Node.js and streams its stdout and stderr
// back to the engine, like upstream's host:
//
//   - kind "analyzer" (a policy pack, `pulumi preview --policy-pack DIR`):
//     `node @pulumi/pulumi/cmd/run-policy-pack <args...> <pack dir>`, the module
//     resolved from the pack directory, run in the pack directory. The engine's
//     args are its own address. Before node starts, a policy proxy (the SDK's
//     sdk.PolicyProxy) prints its port as the plugin's first stdout line; the
//     engine handshakes with it and sends ConfigureStack, whose organization,
//     project, stack, dry-run flag and config become PULUMI_NODEJS_* and
//     PULUMI_CONFIG for the pack (what @pulumi/policy reads); the proxy then
//     reads the pack's own port from node's stdout and forwards every call.
//   - any other kind: `node @pulumi/pulumi/cmd/run-plugin <plugin dir> <args...>`
//     in the engine's working directory.
//
// The environment is the engine's (req.Env) plus PULUMI_NODEJS_TYPESCRIPT /
// _TSCONFIG_PATH from the plugin's runtime options (PulumiPolicy.yaml or
// PulumiPlugin.yaml). A non-zero exit is sent as the Exitcode message (as the
// Go and Python hosts do; upstream's Node host returns an error instead);
// a clean exit ends the stream, which the engine reads as exit code 0.
func (h *nodeHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server grpc.ServerStreamingServer[pulumirpc.RunPluginResponse],
) error {
	ctx := server.Context()
	if req.GetAttachDebugger() {
		return status.Error(codes.Unimplemented, "citadel's language host cannot attach a debugger to a plugin")
	}
	info := req.GetInfo()
	if info == nil || info.GetProgramDirectory() == "" {
		return status.Error(codes.InvalidArgument, "RunPlugin needs the plugin's program directory")
	}
	pluginDir := info.GetProgramDirectory()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return status.Error(codes.FailedPrecondition, "could not find `node` on PATH: install Node.js")
	}
	opts := h.options(info)

	// One lock for every Send: node's stdout and stderr are copied by two
	// goroutines, and a gRPC stream must not be sent on concurrently.
	var sendMu sync.Mutex
	send := func(r *pulumirpc.RunPluginResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return server.Send(r)
	}
	var stdout io.Writer = &streamWriter{send: func(b []byte) error {
		return send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}})
	}}
	stderr := &streamWriter{send: func(b []byte) error {
		return send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}})
	}}

	env := append([]string(nil), req.GetEnv()...)
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}

	analyzer := req.GetKind() == kindAnalyzer
	mod := "@pulumi/pulumi/cmd/run-plugin"
	if analyzer {
		mod = "@pulumi/pulumi/cmd/run-policy-pack"
	} else if p := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH"); p != "" {
		mod = p
	}
	script, err := locateModule(ctx, nodeBin, mod, pluginDir)
	if err != nil {
		return err
	}

	// Node's own options go before the script (upstream appends them after it,
	// where they reach the script as arguments and node never sees them).
	var args []string
	if opts.nodeargs != "" {
		args = append(args, strings.Fields(opts.nodeargs)...)
	}
	args = append(args, script)
	if analyzer {
		args = append(args, req.GetArgs()...)
		args = append(args, pluginDir)
	} else {
		args = append(args, pluginDir)
		args = append(args, req.GetArgs()...)
	}

	var proxy *sdk.PolicyProxy
	if analyzer {
		// The proxy writes its port to the engine's stdout; node's stdout goes
		// through the proxy, which takes the pack's port from its first line.
		proxy, stdout, err = sdk.NewPolicyProxy(ctx, stdout)
		if err != nil {
			return fmt.Errorf("could not start the policy pack proxy: %w", err)
		}
		stackConfig, err := proxy.AwaitConfiguration(ctx)
		if err != nil {
			return fmt.Errorf("could not get the stack configuration for the policy pack: %w", err)
		}
		if stackConfig != nil {
			setEnv := func(k, v string) {
				if v != "" {
					env = append(env, k+"="+v)
				}
			}
			setEnv("PULUMI_NODEJS_ORGANIZATION", stackConfig.GetOrganization())
			setEnv("PULUMI_NODEJS_PROJECT", stackConfig.GetProject())
			setEnv("PULUMI_NODEJS_STACK", stackConfig.GetStack())
			setEnv("PULUMI_NODEJS_DRY_RUN", strconv.FormatBool(stackConfig.GetDryRun()))
			if cfg := stackConfig.GetConfig(); cfg != nil {
				b, err := json.Marshal(cfg)
				if err != nil {
					return fmt.Errorf("could not marshal the stack configuration: %w", err)
				}
				setEnv("PULUMI_CONFIG", string(b))
			}
		}
	}

	cmd := exec.CommandContext(ctx, nodeBin, args...) //nolint:gosec // the engine chose the plugin
	// Policy packs always ran in their own directory (their node_modules, their
	// tsconfig.json); other plugins run in the engine's working directory.
	if analyzer {
		cmd.Dir = pluginDir
	} else {
		cmd.Dir = req.GetPwd()
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr

	runErr := cmd.Start()
	if runErr == nil {
		if proxy != nil {
			runErr = proxy.Attach(ctx, cmd) // waits for node to exit
		} else {
			runErr = cmd.Wait()
		}
	}
	if runErr != nil {
		var exitErr *exec.ExitError
		if errors.As(runErr, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Exited() {
				return send(&pulumirpc.RunPluginResponse{
					Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(ws.ExitStatus())},
				})
			}
			return fmt.Errorf("plugin exited unexpectedly: %w", exitErr)
		}
		return fmt.Errorf("could not run the plugin with node: %w", runErr)
	}
	return nil
}

// InstallDependencies runs `npm install` in the program directory, streaming
// its output to the engine.
func (h *nodeHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	dir := programDirectory(req.GetInfo(), req.GetDirectory())
	npm, err := exec.LookPath("npm")
	if err != nil {
		return status.Error(codes.FailedPrecondition, "could not find `npm` on PATH")
	}
	cmd := exec.CommandContext(server.Context(), npm, "install")
	cmd.Dir = dir
	var sendMu sync.Mutex // stdout and stderr are copied by two goroutines
	send := func(r *pulumirpc.InstallDependenciesResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return server.Send(r)
	}
	w := &streamWriter{send: func(b []byte) error {
		return send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	e := &streamWriter{send: func(b []byte) error {
		return send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	cmd.Stdout, cmd.Stderr = w, e
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm install failed: %w", err)
	}
	return nil
}

type streamWriter struct{ send func([]byte) error }

func (s *streamWriter) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	if err := s.send(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *nodeHost) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, "could not find `node` on PATH")
	}
	out, err := exec.CommandContext(ctx, nodeBin, "--version").Output()
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: nodeBin,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
	}, nil
}

// GetProgramDependencies lists the program's direct npm dependencies with the
// versions installed in node_modules.
func (h *nodeHost) GetProgramDependencies(
	_ context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir := programDirectory(req.GetInfo(), req.GetPwd())
	p, err := readPackageJSON(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for n := range p.Dependencies {
		names[n] = true
	}
	if req.GetTransitiveDependencies() {
		for n := range p.DevDependencies {
			names[n] = true
		}
	}
	nm := findNodeModules(dir)
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		v := ""
		if nm != "" {
			if dep, err := readPackageJSON(filepath.Join(nm, n, "package.json")); err == nil {
				v = dep.Version
			}
		}
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: n, Version: v})
	}
	return resp, nil
}
