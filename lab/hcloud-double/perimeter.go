package main

// The cloud firewall, enforced for real: one nftables table per server (inet family, named after
// its VPS, e.g. citadel_hcloud_7), hooked on this machine's forward path (a lab container, or
// anything routed, reaching the VPS over the lab bridge: the bridge's packets pass the IP hooks
// with br_netfilter) and on its output path (this machine's own connections to the VPS). Rules
// follow Hetzner's semantics: with a firewall applied, inbound traffic is dropped unless a rule
// allows it; outbound traffic is free unless there are outbound rules, then only those pass;
// answers to allowed connections pass (stateful). A rule's IPv4 networks apply to the server's
// IPv4 address, its IPv6 networks to the server's IPv6 /64 (when the lab routes one to it). The
// chains run before Docker's (priority filter - 10), and a drop in any base chain is final.

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

type nftPerimeter struct {
	// The nft command (e.g. ["nft"], or ["ip", "netns", "exec", NS, "nft"] in tests).
	nft []string
}

// tableName is the nftables table of a VPS: its name with dashes as underscores.
func tableName(vps string) string { return strings.ReplaceAll(vps, "-", "_") }

func (p *nftPerimeter) run(script string) error {
	cmd := exec.Command(p.nft[0], append(slices.Clone(p.nft[1:]), "-f", "-")...)
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Apply replaces the VPS's table atomically (one nft transaction): declared, flushed by delete,
// declared anew with the rules; with no firewall attached the table is just removed.
func (p *nftPerimeter) Apply(vps, address, network6 string, attached bool, rules []schema.FirewallRule) error {
	script, err := renderTable(vps, address, network6, attached, rules)
	if err != nil {
		return err
	}
	return p.run(script)
}

func (p *nftPerimeter) Remove(vps string) error {
	t := tableName(vps)
	return p.run(fmt.Sprintf("table inet %s\ndelete table inet %s\n", t, t))
}

// renderTable is the nft script that puts the rules in force for address and network6 ("" for none).
func renderTable(vps, address, network6 string, attached bool, rules []schema.FirewallRule) (string, error) {
	addr, err := netip.ParseAddr(address)
	if err != nil || !addr.Is4() {
		return "", fmt.Errorf("perimeter: %q is not an IPv4 address", address)
	}
	var net6 netip.Prefix
	if network6 != "" {
		if net6, err = netip.ParsePrefix(network6); err != nil || !net6.Addr().Is6() {
			return "", fmt.Errorf("perimeter: %q is not an IPv6 network", network6)
		}
	}
	t := tableName(vps)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", t, t)
	if !attached {
		return b.String(), nil
	}
	var in, out []string
	for _, r := range rules {
		lines := ruleLines(r, net6.IsValid())
		if r.Direction == "in" {
			in = append(in, lines...)
		} else {
			out = append(out, lines...)
		}
	}
	fmt.Fprintf(&b, "table inet %s {\n", t)
	fmt.Fprintf(&b, "  comment \"Hetzner cloud firewall of %s (%s), by the lab's API double\"\n", vps, address)
	b.WriteString("  chain inbound {\n    ct state established,related accept\n")
	for _, l := range in {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	b.WriteString("    counter drop\n  }\n")
	if len(out) > 0 {
		b.WriteString("  chain outbound {\n    ct state established,related accept\n")
		for _, l := range out {
			fmt.Fprintf(&b, "    %s\n", l)
		}
		b.WriteString("    counter drop\n  }\n")
	}
	to := fmt.Sprintf("    ip daddr %s jump inbound\n", addr)
	from := fmt.Sprintf("    ip saddr %s jump outbound\n", addr)
	if net6.IsValid() {
		to += fmt.Sprintf("    ip6 daddr %s jump inbound\n", net6.Masked())
		from += fmt.Sprintf("    ip6 saddr %s jump outbound\n", net6.Masked())
	}
	fmt.Fprintf(&b, "  chain forward {\n    type filter hook forward priority filter - 10; policy accept;\n%s", to)
	if len(out) > 0 {
		b.WriteString(from)
	}
	b.WriteString("  }\n")
	fmt.Fprintf(&b, "  chain output {\n    type filter hook output priority filter - 10; policy accept;\n%s  }\n", to)
	b.WriteString("}\n")
	return b.String(), nil
}

// ruleLines renders one rule as nft accepts: one for its IPv4 networks, and one for its IPv6
// networks when the server has an IPv6 network (with6); none for a family it does not name.
func ruleLines(r schema.FirewallRule, with6 bool) []string {
	var lines []string
	for _, v6 := range []bool{false, true} {
		if v6 && !with6 {
			continue
		}
		if l, ok := ruleLine(r, v6); ok {
			lines = append(lines, l)
		}
	}
	return lines
}

// ruleLine renders one rule's part for one family as an nft accept; false when it names no
// network of that family. Every line names its family, so a rule for one never opens the other.
func ruleLine(r schema.FirewallRule, v6 bool) (string, bool) {
	nets := r.SourceIPs
	match := "saddr"
	if r.Direction == "out" {
		nets, match = r.DestinationIPs, "daddr"
	}
	family, nfproto, icmp := "ip", "ipv4", "icmp"
	if v6 {
		family, nfproto, icmp = "ip6", "ipv6", "ipv6-icmp"
	}
	var ps []string
	any := false
	for _, n := range nets {
		p, err := netip.ParsePrefix(n)
		if err != nil || p.Addr().Is6() != v6 || p.Addr().Is4In6() {
			continue
		}
		if p.Bits() == 0 {
			any = true
		}
		ps = append(ps, p.Masked().String())
	}
	if len(ps) == 0 {
		return "", false
	}
	parts := []string{"meta nfproto " + nfproto}
	if !any {
		parts = []string{fmt.Sprintf("%s %s { %s }", family, match, strings.Join(ps, ", "))}
	}
	switch r.Protocol {
	case "tcp", "udp":
		if r.Port != nil && *r.Port != "any" {
			parts = append(parts, fmt.Sprintf("%s dport %s", r.Protocol, *r.Port))
		} else {
			parts = append(parts, "meta l4proto "+r.Protocol)
		}
	case "icmp":
		parts = append(parts, "meta l4proto "+icmp)
	case "esp", "gre":
		parts = append(parts, "meta l4proto "+r.Protocol)
	default:
		return "", false
	}
	return strings.Join(parts, " ") + " accept", true
}
