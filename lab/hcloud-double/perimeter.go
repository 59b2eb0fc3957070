package main

// The cloud firewall, enforced for real: one nftables table per server (inet family, named after
// its VPS, e.g. citadel_hcloud_7), hooked on this machine's forward path (a lab container, or
// anything routed, reaching the VPS over the lab bridge: the bridge's packets pass the IP hooks
// with br_netfilter) and on its output path (this machine's own connections to the VPS). Rules
// follow Hetzner's semantics: with a firewall applied, inbound traffic is dropped unless a rule
// allows it; outbound traffic is free unless there are outbound rules, then only those pass;
// answers to allowed connections pass (stateful). Only IPv4 sources and destinations are rendered:
// the lab routes no IPv6 to the VPS. The chains run before Docker's (priority filter - 10), and a
// drop in any base chain is final.

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
func (p *nftPerimeter) Apply(vps, address string, attached bool, rules []schema.FirewallRule) error {
	script, err := renderTable(vps, address, attached, rules)
	if err != nil {
		return err
	}
	return p.run(script)
}

func (p *nftPerimeter) Remove(vps string) error {
	t := tableName(vps)
	return p.run(fmt.Sprintf("table inet %s\ndelete table inet %s\n", t, t))
}

// renderTable is the nft script that puts the rules in force for address.
func renderTable(vps, address string, attached bool, rules []schema.FirewallRule) (string, error) {
	addr, err := netip.ParseAddr(address)
	if err != nil || !addr.Is4() {
		return "", fmt.Errorf("perimeter: %q is not an IPv4 address", address)
	}
	t := tableName(vps)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", t, t)
	if !attached {
		return b.String(), nil
	}
	var in, out []string
	for _, r := range rules {
		line, ok := ruleLine(r)
		if !ok {
			continue
		}
		if r.Direction == "in" {
			in = append(in, line)
		} else {
			out = append(out, line)
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
	fmt.Fprintf(&b, "  chain forward {\n    type filter hook forward priority filter - 10; policy accept;\n    ip daddr %s jump inbound\n", addr)
	if len(out) > 0 {
		fmt.Fprintf(&b, "    ip saddr %s jump outbound\n", addr)
	}
	b.WriteString("  }\n")
	fmt.Fprintf(&b, "  chain output {\n    type filter hook output priority filter - 10; policy accept;\n    ip daddr %s jump inbound\n  }\n", addr)
	b.WriteString("}\n")
	return b.String(), nil
}

// ruleLine renders one rule's IPv4 part as an nft accept; false when it has no IPv4 networks.
func ruleLine(r schema.FirewallRule) (string, bool) {
	nets := r.SourceIPs
	match := "saddr"
	if r.Direction == "out" {
		nets, match = r.DestinationIPs, "daddr"
	}
	var v4 []string
	any4 := false
	for _, n := range nets {
		p, err := netip.ParsePrefix(n)
		if err != nil || !p.Addr().Is4() {
			continue
		}
		if p.Bits() == 0 {
			any4 = true
		}
		v4 = append(v4, p.String())
	}
	if len(v4) == 0 {
		return "", false
	}
	var parts []string
	if !any4 {
		parts = append(parts, fmt.Sprintf("ip %s { %s }", match, strings.Join(v4, ", ")))
	}
	switch r.Protocol {
	case "tcp", "udp":
		if r.Port != nil && *r.Port != "any" {
			parts = append(parts, fmt.Sprintf("%s dport %s", r.Protocol, *r.Port))
		} else {
			parts = append(parts, "meta l4proto "+r.Protocol)
		}
	case "icmp":
		parts = append(parts, "meta l4proto icmp")
	case "esp", "gre":
		parts = append(parts, "meta l4proto "+r.Protocol)
	default:
		return "", false
	}
	return strings.Join(parts, " ") + " accept", true
}
