// Command demo-app is Citadel's demo application for the local VPS: the smallest real client of the
// stack's data tier, so what the stack promises can be seen from the outside (gateway → app →
// Postgres over verified TLS, Redis with its ACL user, JWTs and an encryption keyring from files).
//
//	GET  /             "hello from citadel demo"
//	GET  /healthz      "ok" (no dependency: the container's healthcheck)
//	GET  /secrets      every *_FILE variable, its path, and whether that file is readable and
//	                   non-empty. Never a secret's value, length or hash.
//	GET  /check        one round trip to Postgres (TLS verified) and Redis, and the JWT and keyring
//	                   files parsed: 200 {"postgres":"ok",...} or 503 naming what failed
//	POST /rows         body: text. Stored in Postgres with a copy encrypted under the keyring's
//	                   current key; answers {"id":N,"keyId":"..."}
//	GET  /rows         every row, its encrypted copy decrypted again: [{"id","body","note","keyId"}]
//	PUT  /kv/{key}     body: value, kept in Redis;  GET /kv/{key}: the value
//	POST /token        a JWT (HS256, 1 h) signed with the current JWT secret
//	POST /verify       Authorization: Bearer <jwt>: 200 {"valid":true,"key":"current"|"previous"}, or 401
//	POST /encrypt      body: text → {"ciphertext":"<keyId>.<base64>"} (AES-256-GCM, current key)
//	POST /decrypt      body: a ciphertext → the text, with the key its id names
//
// Secrets are read from their files every time a connection is made or a token is signed (never
// cached), so a rotation that rewrites the files reaches a running app. Connections that fail while a
// rotation is under way (the database still has the old password for a second, Redis is being
// re-created) are retried for up to retryFor.
//
// `demo-app healthcheck` exits 0 when /healthz answers 200 on loopback: the container's healthcheck
// without curl or a shell in the image. It listens on :$PORT (default 8080), needs no writable path
// (read-only root filesystem) and runs as any non-root uid.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

const greeting = "hello from citadel demo\n"

// How long a request keeps retrying a data-tier connection before it answers an error.
const retryFor = 20 * time.Second

// secretFile is what /secrets reports about one *_FILE variable.
type secretFile struct {
	Env      string `json:"env"`
	Path     string `json:"path"`
	Readable bool   `json:"readable"`
	NonEmpty bool   `json:"nonEmpty"`
	// Why the file could not be read (e.g. "permission denied"); never its content.
	Error string `json:"error,omitempty"`
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func port() string { return env("PORT", "8080") }

// inspectSecret opens the file and reads at most one byte: enough to know it is readable and not
// empty, and nothing of the secret leaves this function.
func inspectSecret(env, path string) secretFile {
	s := secretFile{Env: env, Path: path}
	f, err := os.Open(path)
	if err != nil {
		s.Error = errorText(err)
		return s
	}
	defer f.Close()
	var one [1]byte
	n, err := f.Read(one[:])
	one[0] = 0
	switch {
	case n == 1:
		s.Readable, s.NonEmpty = true, true
	case errors.Is(err, io.EOF):
		s.Readable = true
	default:
		s.Error = errorText(err)
	}
	return s
}

// errorText is the OS error without the path (the path is reported on its own).
func errorText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// secretFiles lists the *_FILE variables of the environment, sorted by name.
func secretFiles() []secretFile {
	out := []secretFile{}
	for _, kv := range os.Environ() {
		name, path, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasSuffix(name, "_FILE") || path == "" {
			continue
		}
		out = append(out, inspectSecret(name, path))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Env < out[j].Env })
	return out
}

// readSecret reads the file named by the *_FILE variable. The stack rewrites a rotated file in
// place, so a read can meet it empty for an instant: an empty read is retried briefly.
func readSecret(envName string) ([]byte, error) {
	path := os.Getenv(envName)
	if path == "" {
		return nil, fmt.Errorf("%s is not set", envName)
	}
	for i := 0; ; i++ {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %s", envName, errorText(err))
		}
		if v := strings.TrimRight(string(b), "\r\n"); v != "" {
			return []byte(v), nil
		}
		if i == 20 {
			return nil, fmt.Errorf("%s: the file is empty", envName)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- Data tier ----------------------------------------------------------------------------

type app struct {
	pgOnce sync.Once
	pg     *pgxpool.Pool
	pgErr  error
	redis  *redis.Client
}

// pool connects with libpq's environment (PGHOST, PGDATABASE, PGUSER, PGSSLMODE=verify-full,
// PGSSLROOTCERT: the stack hands data apps the server's certificate) and the password read from
// POSTGRES_PASSWORD_FILE for every new connection.
func (a *app) pool() (*pgxpool.Pool, error) {
	a.pgOnce.Do(func() {
		cfg, err := pgxpool.ParseConfig("")
		if err != nil {
			a.pgErr = err
			return
		}
		cfg.MinConns = 2
		cfg.MaxConns = 8
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
		cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
			pw, err := readSecret("POSTGRES_PASSWORD_FILE")
			if err != nil {
				return err
			}
			cc.Password = string(pw)
			return nil
		}
		a.pg, a.pgErr = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	return a.pg, a.pgErr
}

// retryable: the connection could not be made, or was cut, or the password was refused (a rotation
// in progress). Errors of the statement itself are not retried.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "28") || strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "08")
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || errors.Is(err, io.EOF) || isNetErr(err) || isRedisConnErr(err)
}

func isNetErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

func isRedisConnErr(err error) bool {
	s := err.Error()
	return strings.Contains(s, "WRONGPASS") || strings.Contains(s, "NOAUTH") || strings.Contains(s, "LOADING") ||
		strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") || strings.Contains(s, "closed") ||
		strings.Contains(s, "the file is empty")
}

// withRetry runs fn until it succeeds, fails for a reason not worth retrying, or retryFor passed.
func withRetry(ctx context.Context, fn func(context.Context) error) error {
	deadline := time.Now().Add(retryFor)
	for {
		err := fn(ctx)
		if err == nil || !retryable(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (a *app) ensureSchema(ctx context.Context) error {
	p, err := a.pool()
	if err != nil {
		return err
	}
	return withRetry(ctx, func(ctx context.Context) error {
		_, err := p.Exec(ctx, `CREATE TABLE IF NOT EXISTS demo_rows (
			id bigserial PRIMARY KEY,
			body text NOT NULL,
			note_key_id text NOT NULL,
			note_ciphertext text NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now())`)
		return err
	})
}

// ---- JWT ------------------------------------------------------------------------------------

func hexKey(envName string) ([]byte, error) {
	v, err := readSecret(envName)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(string(v))
	if err != nil || len(k) < 32 {
		return nil, fmt.Errorf("%s does not hold a hex key of at least 256 bit", envName)
	}
	return k, nil
}

func signToken(subject string) (string, error) {
	key, err := hexKey("JWT_SECRET_FILE")
	if err != nil {
		return "", err
	}
	now := time.Now()
	claims := jwt.RegisteredClaims{Subject: subject, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
}

// verifyToken accepts a token signed with the current secret or, during the grace period, the
// previous one; it says which.
func verifyToken(token string) (string, error) {
	var lastErr error
	for _, k := range []struct{ name, env string }{{"current", "JWT_SECRET_FILE"}, {"previous", "JWT_SECRET_PREVIOUS_FILE"}} {
		key, err := hexKey(k.env)
		if err != nil {
			lastErr = err
			continue
		}
		_, err = jwt.Parse(token, func(*jwt.Token) (any, error) { return key, nil }, jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		if err == nil {
			return k.name, nil
		}
		lastErr = err
	}
	return "", lastErr
}

// ---- Keyring ----------------------------------------------------------------------------------

type keyring struct {
	Current string            `json:"current"`
	Keys    map[string]string `json:"keys"`
}

func loadKeyring() (*keyring, error) {
	b, err := readSecret("API_ENCRYPTION_KEYRING_FILE")
	if err != nil {
		return nil, err
	}
	var r keyring
	if err := json.Unmarshal(b, &r); err != nil || r.Keys[r.Current] == "" {
		return nil, errors.New("API_ENCRYPTION_KEYRING_FILE is not a keyring with its current key")
	}
	return &r, nil
}

func (r *keyring) aead(id string) (cipher.AEAD, error) {
	enc, ok := r.Keys[id]
	if !ok {
		return nil, fmt.Errorf("key %q is no longer in the keyring", id)
	}
	k, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("key %q is not a 256-bit key", id)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encrypt: "<keyId>.<base64(nonce | ciphertext)>", the key id authenticated as additional data.
func encrypt(plain []byte) (string, string, error) {
	r, err := loadKeyring()
	if err != nil {
		return "", "", err
	}
	g, err := r.aead(r.Current)
	if err != nil {
		return "", "", err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", "", err
	}
	ct := g.Seal(nonce, nonce, plain, []byte(r.Current))
	return r.Current + "." + base64.StdEncoding.EncodeToString(ct), r.Current, nil
}

func decrypt(s string) ([]byte, error) {
	id, enc, ok := strings.Cut(s, ".")
	if !ok {
		return nil, errors.New("not a ciphertext of this app")
	}
	r, err := loadKeyring()
	if err != nil {
		return nil, err
	}
	g, err := r.aead(id)
	if err != nil {
		return nil, err
	}
	ct, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(ct) < g.NonceSize() {
		return nil, errors.New("not a ciphertext of this app")
	}
	return g.Open(nil, ct[:g.NonceSize()], ct[g.NonceSize():], []byte(id))
}

// ---- HTTP -------------------------------------------------------------------------------------

func text(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, body)
}

func jsonReply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fail logs the cause and answers a bare status: no internal detail reaches the client.
func fail(w http.ResponseWriter, status int, what string, err error) {
	log.Printf("%s: %v", what, err)
	jsonReply(w, status, map[string]string{"error": what})
}

func body(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty body")
	}
	return b, nil
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	// "GET /" also answers HEAD; other methods get 405 from the mux. "/{$}" is the root only.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { text(w, greeting) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { text(w, "ok\n") })
	mux.HandleFunc("GET /secrets", func(w http.ResponseWriter, _ *http.Request) {
		jsonReply(w, http.StatusOK, map[string]any{"secrets": secretFiles()})
	})
	mux.HandleFunc("GET /check", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]string{}
		status := http.StatusOK
		note := func(name string, err error) {
			out[name] = "ok"
			if err != nil {
				log.Printf("check %s: %v", name, err)
				out[name], status = "failed", http.StatusServiceUnavailable
			}
		}
		note("postgres", withRetry(r.Context(), func(ctx context.Context) error {
			p, err := a.pool()
			if err != nil {
				return err
			}
			var ssl bool
			return p.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)
		}))
		note("redis", withRetry(r.Context(), func(ctx context.Context) error { return a.redis.Ping(ctx).Err() }))
		_, err := hexKey("JWT_SECRET_FILE")
		if err == nil {
			_, err = hexKey("JWT_SECRET_PREVIOUS_FILE")
		}
		note("jwt", err)
		_, err = loadKeyring()
		note("keyring", err)
		jsonReply(w, status, out)
	})
	mux.HandleFunc("POST /rows", func(w http.ResponseWriter, r *http.Request) {
		b, err := body(r)
		if err != nil {
			fail(w, http.StatusBadRequest, "a row needs a body", err)
			return
		}
		if err := a.ensureSchema(r.Context()); err != nil {
			fail(w, http.StatusServiceUnavailable, "postgres", err)
			return
		}
		note, keyID, err := encrypt(b)
		if err != nil {
			fail(w, http.StatusInternalServerError, "keyring", err)
			return
		}
		p, _ := a.pool()
		var id int64
		// Retried only when the connection failed: the INSERT itself never ran then.
		err = withRetry(r.Context(), func(ctx context.Context) error {
			return p.QueryRow(ctx, "INSERT INTO demo_rows (body, note_key_id, note_ciphertext) VALUES ($1, $2, $3) RETURNING id", string(b), keyID, note).Scan(&id)
		})
		if err != nil {
			fail(w, http.StatusServiceUnavailable, "postgres", err)
			return
		}
		jsonReply(w, http.StatusCreated, map[string]any{"id": id, "keyId": keyID})
	})
	mux.HandleFunc("GET /rows", func(w http.ResponseWriter, r *http.Request) {
		if err := a.ensureSchema(r.Context()); err != nil {
			fail(w, http.StatusServiceUnavailable, "postgres", err)
			return
		}
		type row struct {
			ID    int64  `json:"id"`
			Body  string `json:"body"`
			Note  string `json:"note"`
			KeyID string `json:"keyId"`
		}
		var rows []row
		p, _ := a.pool()
		err := withRetry(r.Context(), func(ctx context.Context) error {
			rows = []row{}
			rs, err := p.Query(ctx, "SELECT id, body, note_key_id, note_ciphertext FROM demo_rows ORDER BY id")
			if err != nil {
				return err
			}
			defer rs.Close()
			for rs.Next() {
				var x row
				var ct string
				if err := rs.Scan(&x.ID, &x.Body, &x.KeyID, &ct); err != nil {
					return err
				}
				x.Note = ct
				rows = append(rows, x)
			}
			return rs.Err()
		})
		if err != nil {
			fail(w, http.StatusServiceUnavailable, "postgres", err)
			return
		}
		for i := range rows {
			plain, err := decrypt(rows[i].Note)
			if err != nil {
				fail(w, http.StatusInternalServerError, "row "+strconv.FormatInt(rows[i].ID, 10)+" does not decrypt", err)
				return
			}
			rows[i].Note = string(plain)
		}
		jsonReply(w, http.StatusOK, rows)
	})
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		b, err := body(r)
		if err != nil {
			fail(w, http.StatusBadRequest, "a value is needed", err)
			return
		}
		key := "demo:" + r.PathValue("key")
		if err := withRetry(r.Context(), func(ctx context.Context) error { return a.redis.Set(ctx, key, b, 0).Err() }); err != nil {
			fail(w, http.StatusServiceUnavailable, "redis", err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := "demo:" + r.PathValue("key")
		var v string
		err := withRetry(r.Context(), func(ctx context.Context) error {
			var err error
			v, err = a.redis.Get(ctx, key).Result()
			return err
		})
		if errors.Is(err, redis.Nil) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			fail(w, http.StatusServiceUnavailable, "redis", err)
			return
		}
		text(w, v)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, _ *http.Request) {
		t, err := signToken("demo")
		if err != nil {
			fail(w, http.StatusInternalServerError, "jwt", err)
			return
		}
		jsonReply(w, http.StatusOK, map[string]string{"token": t})
	})
	mux.HandleFunc("POST /verify", func(w http.ResponseWriter, r *http.Request) {
		t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			jsonReply(w, http.StatusUnauthorized, map[string]any{"valid": false})
			return
		}
		key, err := verifyToken(t)
		if err != nil {
			log.Printf("verify: %v", err)
			jsonReply(w, http.StatusUnauthorized, map[string]any{"valid": false})
			return
		}
		jsonReply(w, http.StatusOK, map[string]any{"valid": true, "key": key})
	})
	mux.HandleFunc("POST /encrypt", func(w http.ResponseWriter, r *http.Request) {
		b, err := body(r)
		if err != nil {
			fail(w, http.StatusBadRequest, "nothing to encrypt", err)
			return
		}
		ct, keyID, err := encrypt(b)
		if err != nil {
			fail(w, http.StatusInternalServerError, "keyring", err)
			return
		}
		jsonReply(w, http.StatusOK, map[string]string{"ciphertext": ct, "keyId": keyID})
	})
	mux.HandleFunc("POST /decrypt", func(w http.ResponseWriter, r *http.Request) {
		b, err := body(r)
		if err != nil {
			fail(w, http.StatusBadRequest, "nothing to decrypt", err)
			return
		}
		plain, err := decrypt(strings.TrimSpace(string(b)))
		if err != nil {
			fail(w, http.StatusUnprocessableEntity, "does not decrypt", err)
			return
		}
		text(w, string(plain))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

func newRedis() *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: env("REDIS_ADDR", "redis:6379"),
		// The password is read at every new connection: a rotated file reaches the next connection.
		CredentialsProviderContext: func(context.Context) (string, string, error) {
			pw, err := readSecret("REDIS_PASSWORD_FILE")
			return env("REDIS_USER", "app"), string(pw), err
		},
		DialTimeout:     2 * time.Second,
		MaxRetries:      5,
		MinRetryBackoff: 50 * time.Millisecond,
		MaxRetryBackoff: 500 * time.Millisecond,
	})
}

func healthcheck() int {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", port()) + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "unhealthy: status", resp.StatusCode)
		return 1
	}
	return 0
}

func serve() error {
	a := &app{redis: newRedis()}
	srv := &http.Server{
		Addr:    ":" + port(),
		Handler: a.routes(),
		// Bounded timeouts and headers: a slow or huge client cannot pin the app's memory. The write
		// timeout leaves room for a request that waits out a rotation (retryFor).
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      retryFor + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("demo-app listening on %s as uid %d", srv.Addr, os.Getuid())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "healthcheck":
			os.Exit(healthcheck())
		default:
			fmt.Fprintf(os.Stderr, "usage: %s [healthcheck]\n", os.Args[0])
			os.Exit(2)
		}
	}
	if os.Getuid() == 0 {
		log.Fatal("demo-app refuses to run as root")
	}
	if err := serve(); err != nil {
		log.Fatal(err)
	}
}
