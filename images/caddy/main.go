// Command caddy is Caddy v2 with the standard modules plus github.com/mholt/caddy-ratelimit
// (the `rate_limit` HTTP handler), which Debian's and the stock builds lack.
// Built by images/caddy/build.sh (tests, local VPS) and images/caddy/Dockerfile (production).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-ratelimit"
)

func main() {
	caddycmd.Main()
}
