package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi-go-provider/infer"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ProxyConnection is command:remote:ProxyConnection (a jump host).
type ProxyConnection struct {
	Host               string   `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional" provider:"secret"`
	PrivateKey         *string  `pulumi:"privateKey,optional" provider:"secret"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

func (*ProxyConnection) Annotate(a infer.Annotator) {
	a.SetToken("remote", "ProxyConnection")
}

// Connection is command:remote:Connection.
type Connection struct {
	Host               string           `pulumi:"host"`
	Port               *float64         `pulumi:"port,optional"`
	User               *string          `pulumi:"user,optional"`
	Password           *string          `pulumi:"password,optional" provider:"secret"`
	PrivateKey         *string          `pulumi:"privateKey,optional" provider:"secret"`
	PrivateKeyPassword *string          `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string          `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int             `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int             `pulumi:"perDialTimeout,optional"`
	HostKey            *string          `pulumi:"hostKey,optional"`
	Proxy              *ProxyConnection `pulumi:"proxy,optional"`
}

func (*Connection) Annotate(a infer.Annotator) {
	a.SetToken("remote", "Connection")
}

type endpoint struct {
	host, user                    string
	port                          int
	password, key, keyPass, agent *string
	dialErrorLimit, perDialSecs   int
	hostKey                       *string
}

func (c Connection) endpoint() endpoint {
	return mkEndpoint(c.Host, c.Port, c.User, c.Password, c.PrivateKey, c.PrivateKeyPassword,
		c.AgentSocketPath, c.DialErrorLimit, c.PerDialTimeout, c.HostKey)
}

func (c ProxyConnection) endpoint() endpoint {
	return mkEndpoint(c.Host, c.Port, c.User, c.Password, c.PrivateKey, c.PrivateKeyPassword,
		c.AgentSocketPath, c.DialErrorLimit, c.PerDialTimeout, c.HostKey)
}

func mkEndpoint(host string, port *float64, user, pw, key, keyPass, agentSock *string,
	limit, perDial *int, hostKey *string,
) endpoint {
	e := endpoint{host: host, port: 22, user: "root", password: pw, key: key, keyPass: keyPass,
		agent: agentSock, dialErrorLimit: 10, perDialSecs: 15, hostKey: hostKey}
	if port != nil {
		e.port = int(*port)
	}
	if user != nil && *user != "" {
		e.user = *user
	}
	if limit != nil {
		e.dialErrorLimit = *limit
	}
	if perDial != nil {
		e.perDialSecs = *perDial
	}
	return e
}

func (e endpoint) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

func (e endpoint) clientConfig() (*ssh.ClientConfig, error) {
	var auths []ssh.AuthMethod
	if e.key != nil && *e.key != "" {
		var signer ssh.Signer
		var err error
		if e.keyPass != nil && *e.keyPass != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*e.key), []byte(*e.keyPass))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*e.key))
		}
		if err != nil {
			return nil, fmt.Errorf("parsing privateKey: %w", err)
		}
		auths = append(auths, ssh.PublicKeys(signer))
	}
	if e.password != nil && *e.password != "" {
		pw := *e.password
		auths = append(auths, ssh.Password(pw), ssh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	sock := ""
	if e.agent != nil {
		sock = *e.agent
	} else if len(auths) == 0 {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("connecting to the SSH agent at %s: %w", sock, err)
		}
		auths = append(auths, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	if len(auths) == 0 {
		return nil, errors.New("no SSH authentication method: set privateKey, password or agentSocketPath")
	}
	hostKeyCallback := ssh.InsecureIgnoreHostKey() //nolint:gosec // upstream default without hostKey
	var algos []string
	if e.hostKey != nil && *e.hostKey != "" {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*e.hostKey))
		if err != nil {
			return nil, fmt.Errorf("parsing hostKey (want authorized_keys format, e.g. \"ssh-ed25519 AAAA...\"): %w", err)
		}
		hostKeyCallback = ssh.FixedHostKey(pub)
		algos = hostKeyAlgorithms(pub.Type())
	}
	return &ssh.ClientConfig{
		User:              e.user,
		Auth:              auths,
		HostKeyCallback:   hostKeyCallback,
		HostKeyAlgorithms: algos,
		Timeout:           time.Duration(e.perDialSecs) * time.Second,
	}, nil
}

// hostKeyAlgorithms makes the server present the pinned key's type.
func hostKeyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// dial connects to the connection's host, through its proxy if any,
// retrying up to dialErrorLimit times (negative: forever) like upstream.
func (c Connection) dial(ctx context.Context) (*ssh.Client, error) {
	target := c.endpoint()
	cfg, err := target.clientConfig()
	if err != nil {
		return nil, err
	}
	var proxyCfg *ssh.ClientConfig
	var proxy endpoint
	if c.Proxy != nil {
		proxy = c.Proxy.endpoint()
		if proxyCfg, err = proxy.clientConfig(); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	var lastErr error
	for attempt := 0; target.dialErrorLimit < 0 || attempt <= target.dialErrorLimit; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(min(attempt, 5)) * time.Second):
			}
		}
		var client *ssh.Client
		if proxyCfg == nil {
			client, lastErr = ssh.Dial("tcp", target.addr(), cfg)
		} else {
			client, lastErr = dialVia(proxy, proxyCfg, target, cfg)
		}
		if lastErr == nil {
			return client, nil
		}
		var keyErr *ssh.ServerAuthError
		if errors.As(lastErr, &keyErr) || strings.Contains(lastErr.Error(), "host key mismatch") {
			break // retrying cannot fix authentication or a wrong host key
		}
	}
	return nil, fmt.Errorf("dialing %s: %w", target.addr(), lastErr)
}

func dialVia(proxy endpoint, proxyCfg *ssh.ClientConfig, target endpoint, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	pc, err := ssh.Dial("tcp", proxy.addr(), proxyCfg)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxy.addr(), err)
	}
	conn, err := pc.Dial("tcp", target.addr())
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("via proxy %s: %w", proxy.addr(), err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, target.addr(), cfg)
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	return ssh.NewClient(cc, chans, reqs), nil
}

// RemoteCommand is command:remote:Command.
type RemoteCommand struct{}

// RemoteCommandArgs are its inputs.
type RemoteCommandArgs struct {
	CommonArgs
	Connection Connection `pulumi:"connection" provider:"secret"`
}

// RemoteCommandState is its state: the inputs plus stdout and stderr.
type RemoteCommandState struct {
	RemoteCommandArgs
	CommonOutputs
}

func (*RemoteCommand) Annotate(a infer.Annotator) {
	a.SetToken("remote", "Command")
	a.Describe(&RemoteCommand{}, "A command to run on a remote host. The connection is established via ssh.")
}

// exportPrefix turns the environment into `export K='V';` statements: unlike
// SSH's setenv request it does not depend on the server's AcceptEnv.
func exportPrefix(env map[string]string) string {
	if len(env) == 0 {
		return ""
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString("export ")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(shellQuote(env[k]))
		b.WriteString("; ")
	}
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

func (a RemoteCommandArgs) runner() runner {
	return func(ctx context.Context, command string, env map[string]string,
		stdin *string, stdout, stderr io.Writer,
	) error {
		for k := range env {
			if !validEnvName(k) {
				return fmt.Errorf("invalid environment variable name %q", k)
			}
		}
		client, err := a.Connection.dial(ctx)
		if err != nil {
			return err
		}
		defer client.Close()
		session, err := client.NewSession()
		if err != nil {
			return err
		}
		defer session.Close()
		if stdin != nil {
			session.Stdin = strings.NewReader(*stdin)
		}
		session.Stdout, session.Stderr = stdout, stderr
		done := make(chan error, 1)
		go func() { done <- session.Run(exportPrefix(env) + command) }()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			_ = session.Signal(ssh.SIGTERM)
			return ctx.Err()
		}
	}
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}

func (*RemoteCommand) Create(
	ctx context.Context, req infer.CreateRequest[RemoteCommandArgs],
) (infer.CreateResponse[RemoteCommandState], error) {
	in := req.Inputs
	id, err := newID(req.Name)
	if err != nil {
		return infer.CreateResponse[RemoteCommandState]{}, err
	}
	state := RemoteCommandState{RemoteCommandArgs: in}
	if req.DryRun || in.Create == nil {
		return infer.CreateResponse[RemoteCommandState]{ID: id, Output: state}, nil
	}
	out, err := runCommand(ctx, in.runner(), *in.Create, in.CommonArgs, nil)
	if err != nil {
		return infer.CreateResponse[RemoteCommandState]{}, err
	}
	state.CommonOutputs = out
	return infer.CreateResponse[RemoteCommandState]{ID: id, Output: state}, nil
}

func (*RemoteCommand) Update(
	ctx context.Context, req infer.UpdateRequest[RemoteCommandArgs, RemoteCommandState],
) (infer.UpdateResponse[RemoteCommandState], error) {
	in := req.Inputs
	state := RemoteCommandState{RemoteCommandArgs: in, CommonOutputs: req.State.CommonOutputs}
	out, err := updateOutputs(ctx, req.DryRun, in.runner(), in.CommonArgs, req.State.CommonOutputs)
	if err != nil {
		return infer.UpdateResponse[RemoteCommandState]{}, err
	}
	state.CommonOutputs = out
	return infer.UpdateResponse[RemoteCommandState]{Output: state}, nil
}

func (*RemoteCommand) Delete(
	ctx context.Context, req infer.DeleteRequest[RemoteCommandState],
) (infer.DeleteResponse, error) {
	st := req.State
	return infer.DeleteResponse{}, deleteCommand(ctx, st.runner(), st.CommonArgs, st.CommonOutputs)
}
