// hcloud-double: a stateful Hetzner Cloud API double for the lab. It speaks the API's JSON on the
// types of hcloud-go's schema package, boots a real lab VPS for each server (through a driver
// command, see machines.go) and enforces each server's cloud firewall with nftables on this
// machine (perimeter.go). Pulumi's hcloud provider reaches it through hcloud:endpoint.
//
//	hcloud-double -listen 127.0.0.1:0 -token-file FILE -pool 172.30.99.200-172.30.99.239 \
//	    -vps-prefix citadel-hcloud -driver "npx tsx lab/hcloud-double/driver.ts" [-state FILE]
//
// It prints "listening on http://ADDR/v1" once it serves, and stops on SIGTERM/SIGINT after the
// machine operations under way have finished. Servers and their VPSes outlive it, as servers
// outlive an API client: delete them through the API (pulumi destroy).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (loopback)")
	tokenFile := flag.String("token-file", "", "file holding the project's API token (64 characters)")
	pool := flag.String("pool", "", "lab IPv4 addresses for servers, FIRST-LAST")
	prefix := flag.String("vps-prefix", "citadel-hcloud", "VPS names are PREFIX-<server id>")
	ipv6Base := flag.String("ipv6-base", "", "a /48 routed to the servers: server N gets its /64 with N as the 4th group (empty: unrouted documentation prefixes)")
	driver := flag.String("driver", "", "command that boots, switches and removes lab VPSes (split on spaces)")
	nft := flag.String("nft", "nft", "nft command (split on spaces)")
	stateFile := flag.String("state", "", "keep the project's state in this JSON file")
	opTimeout := flag.Duration("op-timeout", 20*time.Minute, "longest machine operation")
	flag.Parse()

	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "hcloud-double: "+format+"\n", args...)
		os.Exit(2)
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		fail("-token-file: %v", err)
	}
	token := strings.TrimSpace(string(tok))
	if len(token) != 64 {
		fail("-token-file: the token must be 64 characters (as Hetzner's are), got %d", len(token))
	}
	addrs, err := parsePool(*pool)
	if err != nil {
		fail("-pool: %v", err)
	}
	if strings.TrimSpace(*driver) == "" {
		fail("-driver is required")
	}
	var base6 netip.Prefix
	if *ipv6Base != "" {
		if base6, err = netip.ParsePrefix(*ipv6Base); err != nil || !base6.Addr().Is6() || base6.Bits() > 48 {
			fail("-ipv6-base: %q is not an IPv6 prefix of /48 or shorter", *ipv6Base)
		}
	}
	st, err := newStore(*stateFile)
	if err != nil {
		fail("%v", err)
	}
	a := &api{
		st: st, token: token, pool: addrs, vpsPrefix: *prefix, ipv6Base: base6, opTimeout: *opTimeout,
		machines:  &commandMachines{driver: strings.Fields(*driver)},
		perimeter: &nftPerimeter{nft: strings.Fields(*nft)},
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail("%v", err)
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on http://%s/v1\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fail("%v", err)
	}
	a.ops.Wait()
}
