// Command demo-app is Citadel's demo application for the local VPS: the smallest thing that shows
// the stack working end to end (gateway → app, secrets as files).
//
//	GET /         "hello from citadel demo"
//	GET /healthz  "ok"
//	GET /secrets  JSON: every *_FILE environment variable, its path, and whether that file is
//	              readable and non-empty. Never a secret's value, length or hash.
//
// `demo-app healthcheck` exits 0 when /healthz answers 200 on loopback: the container's healthcheck
// without curl or a shell in the image.
//
// It listens on :$PORT (default 8080), needs no writable path (read-only root filesystem) and runs
// as any non-root uid.
package main

import (
	"context"
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
	"strings"
	"syscall"
	"time"
)

const greeting = "hello from citadel demo\n"

// secretFile is what /secrets reports about one *_FILE variable.
type secretFile struct {
	Env      string `json:"env"`
	Path     string `json:"path"`
	Readable bool   `json:"readable"`
	NonEmpty bool   `json:"nonEmpty"`
	// Why the file could not be read (e.g. "permission denied"); never its content.
	Error string `json:"error,omitempty"`
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}

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

func text(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, body)
}

func routes() http.Handler {
	mux := http.NewServeMux()
	// "GET /" also answers HEAD; other methods get 405 from the mux. "/{$}" is the root only.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { text(w, greeting) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { text(w, "ok\n") })
	mux.HandleFunc("GET /secrets", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]any{"secrets": secretFiles()})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
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
	srv := &http.Server{
		Addr:    ":" + port(),
		Handler: routes(),
		// Bounded timeouts and headers: a slow or huge client cannot pin the app's memory.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
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
