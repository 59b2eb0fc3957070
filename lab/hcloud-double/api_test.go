package main

// The double's endpoints, driven by hcloud-go's own client (the one terraform-provider-hcloud
// uses), with the firewall enforced by the real nft in a network namespace of the test's own.
// Machines are recorded (the real VPS boot is test/e2e/hcloud.test.ts): each boot records which
// nftables rules were in force at that moment.
//
//	cd lab/hcloud-double && go test ./...     (root and nft needed; elsewhere the nft tests skip, CI=true fails)

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"golang.org/x/crypto/ssh"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// netns is a network namespace of the test's own with nft in it, removed at the end.
func netns(t *testing.T) []string {
	t.Helper()
	_, errNft := exec.LookPath("nft")
	_, errIP := exec.LookPath("ip")
	if os.Geteuid() != 0 || errNft != nil || errIP != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft, ip and root are needed for the perimeter tests")
		}
		t.Skip("nft, ip and root are needed for the perimeter tests")
	}
	name := fmt.Sprintf("hcloud-double-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	return []string{"ip", "netns", "exec", name, "nft"}
}

// listTable is `nft list table` for the VPS's table, or "" when there is none.
func listTable(t *testing.T, nft []string, vps string) string {
	t.Helper()
	out, err := exec.Command(nft[0], append(nft[1:], "list", "table", "inet", tableName(vps))...).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return ""
		}
		t.Fatalf("nft list table: %v %s", err, out)
	}
	return string(out)
}

type boot struct {
	spec MachineSpec
	// The VPS's nftables table at the moment the machine was booted.
	tableAtBoot string
}

type recordedMachines struct {
	t       *testing.T
	nft     []string
	mu      sync.Mutex
	boots   []boot
	powers  []string
	removed []string
	failErr error
}

func (m *recordedMachines) Boot(_ context.Context, spec MachineSpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.boots = append(m.boots, boot{spec, listTable(m.t, m.nft, spec.VPS)})
	time.Sleep(50 * time.Millisecond) // the action is seen running at least once
	return m.failErr
}

func (m *recordedMachines) Power(_ context.Context, vps, op, network6 string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.powers = append(m.powers, strings.TrimSpace(vps+" "+op+" "+network6))
	return nil
}

func (m *recordedMachines) Remove(_ context.Context, vps, network6 string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed = append(m.removed, strings.TrimSpace(vps+" "+network6))
	return nil
}

type fixture struct {
	api      *api
	client   *hcloud.Client
	machines *recordedMachines
	nft      []string
	url      string
}

func newFixture(t *testing.T, stateFile string) *fixture {
	t.Helper()
	nft := netns(t)
	st, err := newStore(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := parsePool("172.30.99.200-172.30.99.202")
	if err != nil {
		t.Fatal(err)
	}
	m := &recordedMachines{t: t, nft: nft}
	a := &api{st: st, token: testToken, machines: m, perimeter: &nftPerimeter{nft: nft}, pool: pool, vpsPrefix: "citadel-hcloud-test", ipv6Base: netip.MustParsePrefix("fd17:c1ad:9a::/48"), opTimeout: time.Minute}
	srv := httptest.NewServer(a.routes())
	t.Cleanup(func() {
		a.ops.Wait()
		srv.Close()
	})
	return &fixture{api: a, client: clientFor(srv.URL, testToken), machines: m, nft: nft, url: srv.URL}
}

func clientFor(url, token string) *hcloud.Client {
	return hcloud.NewClient(hcloud.WithEndpoint(url+"/v1"), hcloud.WithToken(token),
		hcloud.WithPollOpts(hcloud.PollOpts{BackoffFunc: hcloud.ConstantBackoff(20 * time.Millisecond)}))
}

func newPublicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " test"
}

// wantAPIError checks an error is the API's error with that code (and HTTP status).
func wantAPIError(t *testing.T, err error, code hcloud.ErrorCode, status int) hcloud.Error {
	t.Helper()
	var he hcloud.Error
	if !errors.As(err, &he) {
		t.Fatalf("want API error %s, got %v", code, err)
	}
	if he.Code != code {
		t.Fatalf("want code %s, got %s (%s)", code, he.Code, he.Message)
	}
	if got := he.Response().StatusCode; got != status {
		t.Fatalf("%s: want HTTP %d, got %d", code, status, got)
	}
	return he
}

func invalidField(t *testing.T, err error, field string) {
	t.Helper()
	he := wantAPIError(t, err, hcloud.ErrorCodeInvalidInput, 422)
	details, ok := he.Details.(hcloud.ErrorDetailsInvalidInput)
	if !ok || len(details.Fields) == 0 || details.Fields[0].Name != field {
		t.Fatalf("want invalid_input naming field %q, got %#v", field, he.Details)
	}
}

var ctx = context.Background()

func TestWrongTokenIsUnauthorized(t *testing.T) {
	f := newFixture(t, "")
	for _, tok := range []string{strings.Repeat("x", 64), ""} {
		_, _, err := clientFor(f.url, tok).SSHKey.List(ctx, hcloud.SSHKeyListOpts{})
		wantAPIError(t, err, hcloud.ErrorCodeUnauthorized, 401)
	}
	if _, _, err := f.client.SSHKey.List(ctx, hcloud.SSHKeyListOpts{}); err != nil {
		t.Fatalf("right token: %v", err)
	}
}

func TestCatalog(t *testing.T) {
	f := newFixture(t, "")
	st, _, err := f.client.ServerType.Get(ctx, "cx22")
	if err != nil || st == nil || st.Architecture != hcloud.ArchitectureX86 || st.Cores != 2 {
		t.Fatalf("server type cx22: %+v %v", st, err)
	}
	if st, _, err := f.client.ServerType.Get(ctx, "cx999"); err != nil || st != nil {
		t.Fatalf("unknown server type: want nil, got %+v %v", st, err)
	}
	if byID, _, err := f.client.ServerType.GetByID(ctx, st.ID); err != nil || byID.Name != "cx22" {
		t.Fatalf("server type by id: %+v %v", byID, err)
	}
	for _, arch := range []hcloud.Architecture{hcloud.ArchitectureX86, hcloud.ArchitectureARM} {
		img, _, err := f.client.Image.GetForArchitecture(ctx, "debian-12", arch)
		if err != nil || img == nil || img.Architecture != arch || img.OSVersion != "12" {
			t.Fatalf("debian-12 for %s: %+v %v", arch, img, err)
		}
	}
	if img, _, err := f.client.Image.GetForArchitecture(ctx, "ubuntu-24.04", hcloud.ArchitectureX86); err != nil || img != nil {
		t.Fatalf("an image the lab cannot boot: want nil, got %+v %v", img, err)
	}
	loc, _, err := f.client.Location.Get(ctx, "hel1")
	if err != nil || loc == nil || loc.City != "Helsinki" {
		t.Fatalf("location hel1: %+v %v", loc, err)
	}
	if loc, _, err := f.client.Location.Get(ctx, "mars1"); err != nil || loc != nil {
		t.Fatalf("unknown location: want nil, got %+v %v", loc, err)
	}
	if all, err := f.client.Location.All(ctx); err != nil || len(all) != 6 {
		t.Fatalf("locations: %d %v", len(all), err)
	}
	_, _, err = f.client.Image.GetByID(ctx, 1)
	if err != nil {
		t.Fatalf("unknown image id: want nil, no error: %v", err)
	}
}

func TestSSHKeys(t *testing.T) {
	f := newFixture(t, "")
	pk := newPublicKey(t)
	key, _, err := f.client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: "citadel-admin-0", PublicKey: pk, Labels: map[string]string{"app": "citadel"}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(pk))
	if key.Fingerprint != ssh.FingerprintLegacyMD5(pub) || key.PublicKey != pk {
		t.Fatalf("key: %+v", key)
	}
	for _, idOrName := range []string{fmt.Sprint(key.ID), "citadel-admin-0"} {
		got, _, err := f.client.SSHKey.Get(ctx, idOrName)
		if err != nil || got == nil || got.ID != key.ID {
			t.Fatalf("get %s: %+v %v", idOrName, got, err)
		}
	}
	_, _, err = f.client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: "citadel-admin-0", PublicKey: newPublicKey(t)})
	wantAPIError(t, err, hcloud.ErrorCodeUniquenessError, 409)
	_, _, err = f.client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: "same-key-other-name", PublicKey: pk})
	wantAPIError(t, err, hcloud.ErrorCodeUniquenessError, 409)
	_, _, err = f.client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: "broken", PublicKey: "ssh-ed25519 AAAAnotakey"})
	invalidField(t, err, "public_key")
	// hcloud-go refuses an empty name itself; the API's answer to one:
	_, err = rawPost(f, "/v1/ssh_keys", `{"name":"","public_key":"`+newPublicKey(t)+`"}`)
	invalidField(t, err, "name")

	upd, _, err := f.client.SSHKey.Update(ctx, key, hcloud.SSHKeyUpdateOpts{Name: "renamed", Labels: map[string]string{"role": "admin"}})
	if err != nil || upd.Name != "renamed" || upd.Labels["role"] != "admin" {
		t.Fatalf("update: %+v %v", upd, err)
	}
	if _, err := f.client.SSHKey.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got, _, err := f.client.SSHKey.GetByID(ctx, key.ID); err != nil || got != nil {
		t.Fatalf("after delete: want nil (404), got %+v %v", got, err)
	}
	_, err = f.client.SSHKey.Delete(ctx, key)
	wantAPIError(t, err, hcloud.ErrorCodeNotFound, 404)
}

func TestPagination(t *testing.T) {
	f := newFixture(t, "")
	for i := range 60 {
		if _, _, err := f.client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: fmt.Sprintf("k%02d", i), PublicKey: newPublicKey(t)}); err != nil {
			t.Fatal(err)
		}
	}
	// All walks the pages (hcloud-go asks for 50 a page) until next_page is null.
	all, err := f.client.SSHKey.All(ctx)
	if err != nil || len(all) != 60 || all[0].Name != "k00" || all[59].Name != "k59" {
		t.Fatalf("all: %d %v", len(all), err)
	}
	page, resp, err := f.client.SSHKey.List(ctx, hcloud.SSHKeyListOpts{ListOpts: hcloud.ListOpts{Page: 3, PerPage: 25}})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Meta.Pagination
	if len(page) != 10 || page[0].Name != "k50" || p.Page != 3 || p.PreviousPage != 2 || p.NextPage != 0 || p.LastPage != 3 || p.TotalEntries != 60 {
		t.Fatalf("page 3: %d items, meta %+v", len(page), p)
	}
	_, _, err = f.client.SSHKey.List(ctx, hcloud.SSHKeyListOpts{ListOpts: hcloud.ListOpts{PerPage: 51}})
	invalidField(t, err, "per_page")
}

func rule(direction hcloud.FirewallRuleDirection, proto hcloud.FirewallRuleProtocol, port string, cidrs ...string) hcloud.FirewallRule {
	r := hcloud.FirewallRule{Direction: direction, Protocol: proto}
	if port != "" {
		r.Port = &port
	}
	for _, c := range cidrs {
		_, n, err := netParseCIDR(c)
		if err != nil {
			panic(err)
		}
		if direction == hcloud.FirewallRuleDirectionIn {
			r.SourceIPs = append(r.SourceIPs, n)
		} else {
			r.DestinationIPs = append(r.DestinationIPs, n)
		}
	}
	return r
}

func perimeterRules() []hcloud.FirewallRule {
	return []hcloud.FirewallRule{
		rule(hcloud.FirewallRuleDirectionIn, hcloud.FirewallRuleProtocolTCP, "22", "172.30.99.1/32"),
		rule(hcloud.FirewallRuleDirectionIn, hcloud.FirewallRuleProtocolTCP, "443", "0.0.0.0/0", "::/0"),
		rule(hcloud.FirewallRuleDirectionIn, hcloud.FirewallRuleProtocolICMP, "", "0.0.0.0/0", "::/0"),
	}
}

func TestFirewallRulesAreValidated(t *testing.T) {
	f := newFixture(t, "")
	bad := map[string]hcloud.FirewallRule{
		"tcp without port":   rule(hcloud.FirewallRuleDirectionIn, hcloud.FirewallRuleProtocolTCP, "", "0.0.0.0/0"),
		"port out of range":  rule(hcloud.FirewallRuleDirectionIn, hcloud.FirewallRuleProtocolTCP, "70000", "0.0.0.0/0"),
		"reversed range":     rule(hcloud.FirewallRuleDirectionIn, hcloud.FirewallRuleProtocolUDP, "90-80", "0.0.0.0/0"),
		"port on icmp":       rule(hcloud.FirewallRuleDirectionIn, hcloud.FirewallRuleProtocolICMP, "22", "0.0.0.0/0"),
		"inbound no sources": rule(hcloud.FirewallRuleDirectionIn, hcloud.FirewallRuleProtocolTCP, "22"),
	}
	for name, r := range bad {
		_, _, err := f.client.Firewall.Create(ctx, hcloud.FirewallCreateOpts{Name: "fw-" + strings.ReplaceAll(name, " ", "-"), Rules: []hcloud.FirewallRule{r}})
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		invalidField(t, err, "rules[0]")
	}
	// A CIDR with host bits set is refused (hcloud-go sends the string as given).
	fw, _, err := f.client.Firewall.Create(ctx, hcloud.FirewallCreateOpts{Name: "ok", Rules: perimeterRules()})
	if err != nil {
		t.Fatal(err)
	}
	bits := "10.0.0.1/8"
	_, err = rawPost(f, fmt.Sprintf("/v1/firewalls/%d/actions/set_rules", fw.Firewall.ID), `{"rules":[{"direction":"in","protocol":"tcp","port":"22","source_ips":["`+bits+`"]}]}`)
	invalidField(t, err, "rules[0]")
	_, _, err = f.client.Firewall.Create(ctx, hcloud.FirewallCreateOpts{Name: "ok"})
	wantAPIError(t, err, hcloud.ErrorCodeUniquenessError, 409)
}

// The whole server life: created behind its firewall (in force before the machine boots), rules
// changed, firewall removed and re-applied, power actions, deleted (VPS and rules gone).
func TestServerLifecycle(t *testing.T) {
	f := newFixture(t, "")
	key, _, err := f.client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: "citadel-admin-0", PublicKey: newPublicKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	fwRes, _, err := f.client.Firewall.Create(ctx, hcloud.FirewallCreateOpts{Name: "citadel-perimeter", Rules: perimeterRules()})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.Action.WaitFor(ctx, fwRes.Actions...); err != nil {
		t.Fatal(err)
	}
	fw := fwRes.Firewall
	st, _, _ := f.client.ServerType.Get(ctx, "cx22")
	img, _, _ := f.client.Image.GetForArchitecture(ctx, "debian-12", st.Architecture)
	opts := hcloud.ServerCreateOpts{
		Name: "citadel", ServerType: st, Image: img, Location: &hcloud.Location{Name: "nbg1"},
		SSHKeys: []*hcloud.SSHKey{key}, UserData: "#cloud-config\nusers: []\n",
		Firewalls: []*hcloud.ServerCreateFirewall{{Firewall: *fw}},
		PublicNet: &hcloud.ServerCreatePublicNet{EnableIPv4: true, EnableIPv6: true},
	}
	res, _, err := f.client.Server.Create(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action.Status != hcloud.ActionStatusRunning || res.Server.Status != hcloud.ServerStatusInitializing {
		t.Fatalf("create: action %s, server %s", res.Action.Status, res.Server.Status)
	}
	if err := f.client.Action.WaitFor(ctx, res.Action); err != nil {
		t.Fatal(err)
	}
	srv, _, err := f.client.Server.Get(ctx, fmt.Sprint(res.Server.ID))
	if err != nil || srv.Status != hcloud.ServerStatusRunning {
		t.Fatalf("server after create: %+v %v", srv, err)
	}
	if srv.PublicNet.IPv4.IP.String() != "172.30.99.200" || srv.Location.Name != "nbg1" || srv.ServerType.Name != "cx22" || srv.Image.Name != "debian-12" {
		t.Fatalf("server: ipv4 %s, location %s, type %s", srv.PublicNet.IPv4.IP, srv.Location.Name, srv.ServerType.Name)
	}
	if srv.PublicNet.IPv6.Network == nil || len(srv.PublicNet.Firewalls) != 1 || srv.PublicNet.Firewalls[0].Firewall.ID != fw.ID {
		t.Fatalf("server public net: %+v", srv.PublicNet)
	}
	vps := "citadel-hcloud-test-" + fmt.Sprint(srv.ID)
	// The server's IPv6 /64 is routed to the machine: server N's is the base's N-th (what the
	// provider reports as the network, and its ::1 as ipv6_address).
	net6 := fmt.Sprintf("fd17:c1ad:9a:%x::/64", srv.ID)
	if srv.PublicNet.IPv6.Network.String() != net6 {
		t.Fatalf("server IPv6 network %s, want %s", srv.PublicNet.IPv6.Network, net6)
	}
	if len(f.machines.boots) != 1 || f.machines.boots[0].spec != (MachineSpec{VPS: vps, Address: "172.30.99.200", Network6: net6, UserData: opts.UserData}) {
		t.Fatalf("boots: %+v", f.machines.boots)
	}
	// In force before the first boot, with SSH only from the admin source (an IPv4 one: no IPv6
	// rule for it), HTTPS and ICMP from anywhere in each family.
	atBoot := f.machines.boots[0].tableAtBoot
	for _, want := range []string{"ip daddr 172.30.99.200 jump inbound", "ip6 daddr " + net6 + " jump inbound", "ip saddr 172.30.99.1 tcp dport 22 accept", "meta nfproto ipv4 tcp dport 443 accept", "meta nfproto ipv6 tcp dport 443 accept", "meta l4proto icmp accept", "meta l4proto ipv6-icmp accept", "drop"} {
		if !strings.Contains(atBoot, want) {
			t.Fatalf("rules at boot lack %q:\n%s", want, atBoot)
		}
	}
	if strings.Contains(atBoot, "dport 22") && strings.Count(atBoot, "dport 22") != 1 {
		t.Fatalf("SSH allowed beyond the admin's IPv4 source:\n%s", atBoot)
	}
	fwGot, _, _ := f.client.Firewall.GetByID(ctx, fw.ID)
	if len(fwGot.AppliedTo) != 1 || fwGot.AppliedTo[0].Server.ID != srv.ID {
		t.Fatalf("firewall applied_to: %+v", fwGot.AppliedTo)
	}

	// Errors a create can meet.
	_, _, err = f.client.Server.Create(ctx, opts)
	wantAPIError(t, err, hcloud.ErrorCodeUniquenessError, 409)
	o2 := opts
	o2.Name, o2.ServerType = "other", &hcloud.ServerType{Name: "cx999"}
	_, _, err = f.client.Server.Create(ctx, o2)
	invalidField(t, err, "server_type")
	o2.ServerType, o2.Location = st, &hcloud.Location{Name: "mars1"}
	_, _, err = f.client.Server.Create(ctx, o2)
	invalidField(t, err, "location")
	o2.Location, o2.Image = nil, &hcloud.Image{Name: "ubuntu-24.04"}
	_, _, err = f.client.Server.Create(ctx, o2)
	invalidField(t, err, "image")

	// set_rules: the new rules are in force at once.
	actions, _, err := f.client.Firewall.SetRules(ctx, fw, hcloud.FirewallSetRulesOpts{Rules: perimeterRules()[1:]})
	if err != nil || f.client.Action.WaitFor(ctx, actions...) != nil || len(actions) != 2 {
		t.Fatalf("set_rules: %d actions, %v", len(actions), err)
	}
	if now := listTable(t, f.nft, vps); strings.Contains(now, "dport 22") || !strings.Contains(now, "dport 443") {
		t.Fatalf("after set_rules:\n%s", now)
	}
	// remove_from_resources: no firewall, no rules (all traffic passes, as on Hetzner).
	actions, _, err = f.client.Firewall.RemoveResources(ctx, fw, []hcloud.FirewallResource{{Type: hcloud.FirewallResourceTypeServer, Server: &hcloud.FirewallResourceServer{ID: srv.ID}}})
	if err != nil || f.client.Action.WaitFor(ctx, actions...) != nil {
		t.Fatalf("remove_from_resources: %v", err)
	}
	if now := listTable(t, f.nft, vps); now != "" {
		t.Fatalf("rules left after remove_from_resources:\n%s", now)
	}
	_, _, err = f.client.Firewall.RemoveResources(ctx, fw, []hcloud.FirewallResource{{Type: hcloud.FirewallResourceTypeServer, Server: &hcloud.FirewallResourceServer{ID: srv.ID}}})
	wantAPIError(t, err, hcloud.ErrorCodeFirewallAlreadyRemoved, 422)
	actions, _, err = f.client.Firewall.ApplyResources(ctx, fw, []hcloud.FirewallResource{{Type: hcloud.FirewallResourceTypeServer, Server: &hcloud.FirewallResourceServer{ID: srv.ID}}})
	if err != nil || f.client.Action.WaitFor(ctx, actions...) != nil || !strings.Contains(listTable(t, f.nft, vps), "dport 443") {
		t.Fatalf("apply_to_resources: %v", err)
	}
	_, _, err = f.client.Firewall.ApplyResources(ctx, fw, []hcloud.FirewallResource{{Type: hcloud.FirewallResourceTypeServer, Server: &hcloud.FirewallResourceServer{ID: 999999}}})
	wantAPIError(t, err, hcloud.ErrorCodeFirewallResourceNotFound, 404)
	// An applied firewall cannot be deleted.
	_, err = f.client.Firewall.Delete(ctx, fw)
	wantAPIError(t, err, hcloud.ErrorCodeResourceInUse, 409)

	// Power actions reach the machine.
	for _, op := range []func(context.Context, *hcloud.Server) (*hcloud.Action, *hcloud.Response, error){f.client.Server.Poweroff, f.client.Server.Poweron, f.client.Server.Reboot} {
		act, _, err := op(ctx, srv)
		if err != nil || f.client.Action.WaitFor(ctx, act) != nil {
			t.Fatalf("power action: %v", err)
		}
	}
	// Each with the server's /64, which the machine holds again after it starts.
	if got := strings.Join(f.machines.powers, ","); got != vps+" off "+net6+","+vps+" on "+net6+","+vps+" reboot "+net6 {
		t.Fatalf("powers: %s", got)
	}
	if s, _, _ := f.client.Server.GetByID(ctx, srv.ID); s.Status != hcloud.ServerStatusRunning {
		t.Fatalf("after reboot: %s", s.Status)
	}

	// Delete: the machine and its rules go, the firewall is free again.
	del, _, err := f.client.Server.DeleteWithResult(ctx, srv)
	if err != nil || f.client.Action.WaitFor(ctx, del.Action) != nil {
		t.Fatalf("delete: %v", err)
	}
	if len(f.machines.removed) != 1 || f.machines.removed[0] != vps+" "+net6 {
		t.Fatalf("removed: %v", f.machines.removed)
	}
	if now := listTable(t, f.nft, vps); now != "" {
		t.Fatalf("rules left after delete:\n%s", now)
	}
	if s, _, err := f.client.Server.GetByID(ctx, srv.ID); err != nil || s != nil {
		t.Fatalf("server after delete: %+v %v", s, err)
	}
	if _, err := f.client.Firewall.Delete(ctx, fw); err != nil {
		t.Fatalf("firewall delete after server delete: %v", err)
	}
	_, _, err = f.client.Server.DeleteWithResult(ctx, srv)
	wantAPIError(t, err, hcloud.ErrorCodeNotFound, 404)
}

func TestFailedBootFailsTheAction(t *testing.T) {
	f := newFixture(t, "")
	f.machines.failErr = errors.New("cloud-init did not finish cleanly")
	st, _, _ := f.client.ServerType.Get(ctx, "cx22")
	img, _, _ := f.client.Image.GetForArchitecture(ctx, "debian-12", st.Architecture)
	res, _, err := f.client.Server.Create(ctx, hcloud.ServerCreateOpts{Name: "broken", ServerType: st, Image: img})
	if err != nil {
		t.Fatal(err)
	}
	err = f.client.Action.WaitFor(ctx, res.Action)
	var ae hcloud.ActionError
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "cloud-init did not finish cleanly") {
		t.Fatalf("want the boot's error on the action, got %v", err)
	}
	if s, _, _ := f.client.Server.GetByID(ctx, res.Server.ID); s.Status != hcloud.ServerStatusOff {
		t.Fatalf("status after a failed boot: %s", s.Status)
	}
}

func TestStateSurvivesARestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	f := newFixture(t, file)
	st, _, _ := f.client.ServerType.Get(ctx, "cx22")
	img, _, _ := f.client.Image.GetForArchitecture(ctx, "debian-12", st.Architecture)
	res, _, err := f.client.Server.Create(ctx, hcloud.ServerCreateOpts{Name: "kept", ServerType: st, Image: img, UserData: "#cloud-config\n"})
	if err != nil || f.client.Action.WaitFor(ctx, res.Action) != nil {
		t.Fatal(err)
	}
	f.api.ops.Wait()
	again := newFixture(t, file)
	s, _, err := again.client.Server.GetByID(ctx, res.Server.ID)
	if err != nil || s == nil || s.Name != "kept" || s.Status != hcloud.ServerStatusRunning || s.PublicNet.IPv4.IP.String() != "172.30.99.200" {
		t.Fatalf("after restart: %+v %v", s, err)
	}
	// The next server takes the next address and a new ID.
	res2, _, err := again.client.Server.Create(ctx, hcloud.ServerCreateOpts{Name: "next", ServerType: st, Image: img})
	if err != nil || res2.Server.ID <= s.ID || res2.Server.PublicNet.IPv4.IP.String() != "172.30.99.201" {
		t.Fatalf("next server: %+v %v", res2, err)
	}
}

// rawPost sends a body hcloud-go's typed options cannot express, through its client (auth and
// error parsing included).
func rawPost(f *fixture, path, body string) (*hcloud.Response, error) {
	req, err := f.client.NewRequest(ctx, "POST", strings.TrimPrefix(path, "/v1"), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	return f.client.Do(req, nil)
}

func netParseCIDR(s string) (net.IP, net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, net.IPNet{}, err
	}
	return ip, *n, nil
}
