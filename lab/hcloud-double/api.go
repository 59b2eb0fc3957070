package main

// The endpoints terraform-provider-hcloud (v1.68.0, on hcloud-go v2.47.0) calls for Citadel's stack:
// ssh_keys, firewalls and their actions, servers and their actions, actions (the provider polls
// GET /actions?id=... until none runs), server_types, images and locations.

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
	"golang.org/x/crypto/ssh"
)

// Machines boots and removes the lab VPS behind a server.
type Machines interface {
	// Boot starts the machine from its user_data at the given lab address; it returns once the
	// machine has booted (cloud-init done).
	Boot(ctx context.Context, spec MachineSpec) error
	// Power switches a booted machine: "off", "on" or "reboot". network6 is the server's IPv6
	// /64 ("" when it has none routed), which the machine holds again after it starts.
	Power(ctx context.Context, vps, op, network6 string) error
	// Remove deletes the machine and everything it kept (network6's route too); no error when it is already gone.
	Remove(ctx context.Context, vps, network6 string) error
}

type MachineSpec struct {
	VPS     string `json:"name"`
	Address string `json:"address"`
	// The server's IPv6 /64, routed to the machine, which holds its ::1 as on Hetzner; "" for none.
	Network6 string `json:"network6,omitempty"`
	UserData string `json:"userData"`
}

// Perimeter enforces a server's cloud firewalls in front of its machine.
type Perimeter interface {
	// Apply puts the union of rules in force for the machine at address and its IPv6 /64
	// network6 ("" for none); with no firewall attached (attached false) all traffic passes, as on Hetzner.
	Apply(vps, address, network6 string, attached bool, rules []schema.FirewallRule) error
	// Remove takes away everything Apply put in place for the machine.
	Remove(vps string) error
}

type api struct {
	st        *store
	token     string
	machines  Machines
	perimeter Perimeter
	// Lab addresses a new server's public IPv4 is taken from.
	pool []netip.Addr
	// VPS names are <vpsPrefix>-<server id>.
	vpsPrefix string
	// A /48 the lab routes to its servers: server N gets <prefix>:N::/64 (its 4th group). Invalid
	// (the zero Prefix): a documentation /64 that nothing routes.
	ipv6Base netip.Prefix
	// Background machine operations, so a caller (tests, shutdown) can wait for them.
	ops sync.WaitGroup
	// How long a machine operation may take.
	opTimeout time.Duration
}

func (a *api) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f func(*http.Request) (int, any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			status, body, err := f(r)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, status, body)
		})
	}
	h("GET /v1/locations", a.listLocations)
	h("GET /v1/locations/{id}", a.getLocation)
	h("GET /v1/server_types", a.listServerTypes)
	h("GET /v1/server_types/{id}", a.getServerType)
	h("GET /v1/images", a.listImages)
	h("GET /v1/images/{id}", a.getImage)
	h("GET /v1/actions", a.listActions)
	h("GET /v1/actions/{id}", a.getAction)
	h("GET /v1/ssh_keys", a.listSSHKeys)
	h("POST /v1/ssh_keys", a.createSSHKey)
	h("GET /v1/ssh_keys/{id}", a.getSSHKey)
	h("PUT /v1/ssh_keys/{id}", a.updateSSHKey)
	h("DELETE /v1/ssh_keys/{id}", a.deleteSSHKey)
	h("GET /v1/firewalls", a.listFirewalls)
	h("POST /v1/firewalls", a.createFirewall)
	h("GET /v1/firewalls/{id}", a.getFirewall)
	h("PUT /v1/firewalls/{id}", a.updateFirewall)
	h("DELETE /v1/firewalls/{id}", a.deleteFirewall)
	h("POST /v1/firewalls/{id}/actions/set_rules", a.setFirewallRules)
	h("POST /v1/firewalls/{id}/actions/apply_to_resources", a.applyFirewall)
	h("POST /v1/firewalls/{id}/actions/remove_from_resources", a.removeFirewall)
	h("GET /v1/servers", a.listServers)
	h("POST /v1/servers", a.createServer)
	h("GET /v1/servers/{id}", a.getServer)
	h("PUT /v1/servers/{id}", a.updateServer)
	h("DELETE /v1/servers/{id}", a.deleteServer)
	for _, op := range []string{"poweron", "poweroff", "shutdown", "reboot", "reset"} {
		h("POST /v1/servers/{id}/actions/"+op, a.powerAction(op))
	}
	h("/", func(r *http.Request) (int, any, error) {
		return 0, nil, &apiError{status: 404, code: "not_found", message: r.Method + " " + r.URL.Path + " is not served (by the Hetzner API double)"}
	})
	return a.auth(mux)
}

// auth answers 401 unauthorized, as the API does, unless the request carries the project's token.
func (a *api) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			writeError(w, &apiError{status: 401, code: "unauthorized", message: "unable to authenticate"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func pathID(r *http.Request, what string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, notFound(what)
	}
	return id, nil
}

// byPathID is the stored resource the request's {id} names, or the API's 404 for `what`.
// The caller holds the state lock.
func byPathID[T any](r *http.Request, m map[int64]*T, what string) (*T, error) {
	id, err := pathID(r, what)
	if err != nil {
		return nil, err
	}
	v, ok := m[id]
	if !ok {
		return nil, notFound(what)
	}
	return v, nil
}

// ---- catalog

func filterByName[T any](r *http.Request, items []T, name func(T) string) []T {
	want, ok := r.URL.Query()["name"]
	if !ok {
		return items
	}
	return slices.DeleteFunc(slices.Clone(items), func(x T) bool { return !slices.Contains(want, name(x)) })
}

func (a *api) listLocations(r *http.Request) (int, any, error) {
	items := filterByName(r, locations, func(l schema.Location) string { return l.Name })
	page, meta, err := paginate(r.URL.Query(), items)
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		schema.LocationListResponse
		Meta schema.Meta `json:"meta"`
	}{schema.LocationListResponse{Locations: page}, meta}, nil
}

func (a *api) getLocation(r *http.Request) (int, any, error) {
	id, err := pathID(r, "location")
	if err != nil {
		return 0, nil, err
	}
	for _, l := range locations {
		if l.ID == id {
			return 200, schema.LocationGetResponse{Location: l}, nil
		}
	}
	return 0, nil, notFound("location")
}

func (a *api) listServerTypes(r *http.Request) (int, any, error) {
	items := filterByName(r, serverTypes, func(t schema.ServerType) string { return t.Name })
	page, meta, err := paginate(r.URL.Query(), items)
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		schema.ServerTypeListResponse
		Meta schema.Meta `json:"meta"`
	}{schema.ServerTypeListResponse{ServerTypes: page}, meta}, nil
}

func (a *api) getServerType(r *http.Request) (int, any, error) {
	id, err := pathID(r, "server type")
	if err != nil {
		return 0, nil, err
	}
	if t := serverTypeByIDOrName(schema.IDOrName{ID: id}); t != nil {
		return 200, schema.ServerTypeGetResponse{ServerType: *t}, nil
	}
	return 0, nil, notFound("server type")
}

func (a *api) listImages(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	items := filterByName(r, images, func(i schema.Image) string { return *i.Name })
	items = slices.DeleteFunc(items, func(i schema.Image) bool {
		return (q.Has("architecture") && !slices.Contains(q["architecture"], i.Architecture)) ||
			(q.Has("type") && !slices.Contains(q["type"], i.Type)) ||
			(q.Has("status") && !slices.Contains(q["status"], i.Status))
	})
	page, meta, err := paginate(q, items)
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		schema.ImageListResponse
		Meta schema.Meta `json:"meta"`
	}{schema.ImageListResponse{Images: page}, meta}, nil
}

func (a *api) getImage(r *http.Request) (int, any, error) {
	id, err := pathID(r, "image")
	if err != nil {
		return 0, nil, err
	}
	for _, i := range images {
		if i.ID == id {
			return 200, schema.ImageGetResponse{Image: i}, nil
		}
	}
	return 0, nil, notFound("image")
}

// ---- actions

func (a *api) listActions(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	var items []schema.Action
	for _, id := range sortedIDs(a.st.s.Actions) {
		act := a.st.s.Actions[id]
		if q.Has("id") && !slices.Contains(q["id"], strconv.FormatInt(id, 10)) {
			continue
		}
		if q.Has("status") && !slices.Contains(q["status"], act.Status) {
			continue
		}
		items = append(items, *act)
	}
	page, meta, err := paginate(q, items)
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		schema.ActionListResponse
		Meta schema.Meta `json:"meta"`
	}{schema.ActionListResponse{Actions: nonNil(page)}, meta}, nil
}

func (a *api) getAction(r *http.Request) (int, any, error) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	act, err := byPathID(r, a.st.s.Actions, "action")
	if err != nil {
		return 0, nil, err
	}
	return 200, schema.ActionGetResponse{Action: *act}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ---- SSH keys

func (a *api) listSSHKeys(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	sel, err := parseLabelSelector(q.Get("label_selector"))
	if err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	var items []schema.SSHKey
	for _, id := range sortedIDs(a.st.s.SSHKeys) {
		k := a.st.s.SSHKeys[id]
		if (q.Has("name") && q.Get("name") != k.Name) || (q.Has("fingerprint") && q.Get("fingerprint") != k.Fingerprint) || !sel.matches(k.Labels) {
			continue
		}
		items = append(items, *k)
	}
	page, meta, err := paginate(q, items)
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		schema.SSHKeyListResponse
		Meta schema.Meta `json:"meta"`
	}{schema.SSHKeyListResponse{SSHKeys: nonNil(page)}, meta}, nil
}

func (a *api) createSSHKey(r *http.Request) (int, any, error) {
	var req schema.SSHKeyCreateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(req.Name) == "" {
		return 0, nil, invalidInput("name", "is required")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		return 0, nil, invalidInput("public_key", "not a valid SSH public key: "+err.Error())
	}
	labels := map[string]string{}
	if req.Labels != nil {
		labels = *req.Labels
	}
	if err := validLabels(labels); err != nil {
		return 0, nil, err
	}
	fingerprint := ssh.FingerprintLegacyMD5(pub)
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	for _, k := range a.st.s.SSHKeys {
		if k.Name == req.Name {
			return 0, nil, uniqueness(fmt.Sprintf("SSH key with the same name already exists: %s", req.Name))
		}
		if k.Fingerprint == fingerprint {
			return 0, nil, uniqueness(fmt.Sprintf("SSH key with the same fingerprint already exists: %s", k.Name))
		}
	}
	k := &schema.SSHKey{ID: a.st.id(), Name: req.Name, Fingerprint: fingerprint, PublicKey: strings.TrimSpace(req.PublicKey), Labels: labels, Created: time.Now().UTC()}
	a.st.s.SSHKeys[k.ID] = k
	a.st.save()
	return 201, schema.SSHKeyCreateResponse{SSHKey: *k}, nil
}

func (a *api) sshKey(r *http.Request) (*schema.SSHKey, error) {
	return byPathID(r, a.st.s.SSHKeys, "SSH key")
}

func (a *api) getSSHKey(r *http.Request) (int, any, error) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	k, err := a.sshKey(r)
	if err != nil {
		return 0, nil, err
	}
	return 200, schema.SSHKeyGetResponse{SSHKey: *k}, nil
}

func (a *api) updateSSHKey(r *http.Request) (int, any, error) {
	var req schema.SSHKeyUpdateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	k, err := a.sshKey(r)
	if err != nil {
		return 0, nil, err
	}
	if req.Name != "" && req.Name != k.Name {
		for _, o := range a.st.s.SSHKeys {
			if o.Name == req.Name {
				return 0, nil, uniqueness(fmt.Sprintf("SSH key with the same name already exists: %s", req.Name))
			}
		}
		k.Name = req.Name
	}
	if req.Labels != nil {
		if err := validLabels(*req.Labels); err != nil {
			return 0, nil, err
		}
		k.Labels = *req.Labels
	}
	a.st.save()
	return 200, schema.SSHKeyUpdateResponse{SSHKey: *k}, nil
}

func (a *api) deleteSSHKey(r *http.Request) (int, any, error) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	k, err := a.sshKey(r)
	if err != nil {
		return 0, nil, err
	}
	delete(a.st.s.SSHKeys, k.ID)
	a.st.save()
	return 204, nil, nil
}

// ---- firewalls

var portRe = regexp.MustCompile(`^([0-9]{1,5})(?:-([0-9]{1,5}))?$`)

// validRules checks rules as the API does and returns them in the response form.
func validRules(in []schema.FirewallRuleRequest) ([]schema.FirewallRule, error) {
	out := make([]schema.FirewallRule, 0, len(in))
	for i, r := range in {
		field := fmt.Sprintf("rules[%d]", i)
		bad := func(msg string) ([]schema.FirewallRule, error) { return nil, invalidInput(field, msg) }
		switch r.Direction {
		case "in":
			if len(r.SourceIPs) == 0 || len(r.DestinationIPs) > 0 {
				return bad("an inbound rule needs source_ips and no destination_ips")
			}
		case "out":
			if len(r.DestinationIPs) == 0 || len(r.SourceIPs) > 0 {
				return bad("an outbound rule needs destination_ips and no source_ips")
			}
		default:
			return bad(`direction must be "in" or "out"`)
		}
		for _, c := range append(slices.Clone(r.SourceIPs), r.DestinationIPs...) {
			p, err := netip.ParsePrefix(c)
			if err != nil || p.Masked() != p {
				return bad(fmt.Sprintf("%q is not a network in CIDR notation", c))
			}
		}
		switch r.Protocol {
		case "tcp", "udp":
			if r.Port == nil {
				return bad("port is required for tcp and udp")
			}
			if *r.Port != "any" {
				m := portRe.FindStringSubmatch(*r.Port)
				ok := m != nil
				if ok {
					lo, _ := strconv.Atoi(m[1])
					hi := lo
					if m[2] != "" {
						hi, _ = strconv.Atoi(m[2])
					}
					ok = lo >= 1 && hi <= 65535 && hi >= lo
				}
				if !ok {
					return bad(fmt.Sprintf("port %q is not a port or range from 1 to 65535", *r.Port))
				}
			}
		case "icmp", "esp", "gre":
			if r.Port != nil {
				return bad("port is only allowed for tcp and udp")
			}
		default:
			return bad(`protocol must be one of tcp, udp, icmp, esp, gre`)
		}
		out = append(out, schema.FirewallRule{Direction: r.Direction, SourceIPs: nonNil(r.SourceIPs), DestinationIPs: nonNil(r.DestinationIPs), Protocol: r.Protocol, Port: r.Port, Description: r.Description})
	}
	return out, nil
}

func (a *api) listFirewalls(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	sel, err := parseLabelSelector(q.Get("label_selector"))
	if err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	var items []schema.Firewall
	for _, id := range sortedIDs(a.st.s.Firewalls) {
		f := a.st.s.Firewalls[id]
		if (q.Has("name") && q.Get("name") != f.Name) || !sel.matches(f.Labels) {
			continue
		}
		items = append(items, *f)
	}
	page, meta, err := paginate(q, items)
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		schema.FirewallListResponse
		Meta schema.Meta `json:"meta"`
	}{schema.FirewallListResponse{Firewalls: nonNil(page)}, meta}, nil
}

// serverRefs checks apply_to/remove_from resources: only servers exist in the lab.
func (a *api) serverRefs(field string, res []schema.FirewallResource) ([]int64, error) {
	var ids []int64
	for _, x := range res {
		if x.Type != "server" || x.Server == nil {
			return nil, invalidInput(field, "only resources of type server are supported by the lab double (label selectors are not)")
		}
		if _, ok := a.st.s.Servers[x.Server.ID]; !ok {
			return nil, &apiError{status: 404, code: "firewall_resource_not_found", message: fmt.Sprintf("server %d not found", x.Server.ID)}
		}
		ids = append(ids, x.Server.ID)
	}
	return ids, nil
}

func (a *api) createFirewall(r *http.Request) (int, any, error) {
	var req schema.FirewallCreateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(req.Name) == "" {
		return 0, nil, invalidInput("name", "is required")
	}
	rules, err := validRules(req.Rules)
	if err != nil {
		return 0, nil, err
	}
	labels := map[string]string{}
	if req.Labels != nil {
		labels = *req.Labels
	}
	if err := validLabels(labels); err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	for _, f := range a.st.s.Firewalls {
		if f.Name == req.Name {
			return 0, nil, uniqueness(fmt.Sprintf("firewall with the same name already exists: %s", req.Name))
		}
	}
	servers, err := a.serverRefs("apply_to", req.ApplyTo)
	if err != nil {
		return 0, nil, err
	}
	f := &schema.Firewall{ID: a.st.id(), Name: req.Name, Labels: labels, Created: time.Now().UTC(), Rules: rules, AppliedTo: []schema.FirewallResource{}}
	a.st.s.Firewalls[f.ID] = f
	actions := []schema.Action{}
	if len(rules) > 0 {
		act := a.st.newAction("set_firewall_rules", ref("firewall", f.ID))
		finishAction(act, nil)
		actions = append(actions, *act)
	}
	for _, sid := range servers {
		actions = append(actions, *a.attach(f, sid))
	}
	a.st.save()
	return 201, schema.FirewallCreateResponse{Firewall: *f, Actions: actions}, nil
}

func (a *api) firewall(r *http.Request) (*schema.Firewall, error) {
	return byPathID(r, a.st.s.Firewalls, "firewall")
}

func (a *api) getFirewall(r *http.Request) (int, any, error) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	f, err := a.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	return 200, schema.FirewallGetResponse{Firewall: *f}, nil
}

func (a *api) updateFirewall(r *http.Request) (int, any, error) {
	var req schema.FirewallUpdateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	f, err := a.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	if req.Name != nil && *req.Name != f.Name {
		if strings.TrimSpace(*req.Name) == "" {
			return 0, nil, invalidInput("name", "must not be empty")
		}
		for _, o := range a.st.s.Firewalls {
			if o.Name == *req.Name {
				return 0, nil, uniqueness(fmt.Sprintf("firewall with the same name already exists: %s", *req.Name))
			}
		}
		f.Name = *req.Name
	}
	if req.Labels != nil {
		if err := validLabels(*req.Labels); err != nil {
			return 0, nil, err
		}
		f.Labels = *req.Labels
	}
	a.st.save()
	return 200, schema.FirewallUpdateResponse{Firewall: *f}, nil
}

func (a *api) deleteFirewall(r *http.Request) (int, any, error) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	f, err := a.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	if len(f.AppliedTo) > 0 {
		return 0, nil, &apiError{status: 409, code: "resource_in_use", message: "firewall is still applied to resources"}
	}
	delete(a.st.s.Firewalls, f.ID)
	a.st.save()
	return 204, nil, nil
}

func (a *api) setFirewallRules(r *http.Request) (int, any, error) {
	var req schema.FirewallActionSetRulesRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	rules, err := validRules(req.Rules)
	if err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	f, err := a.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	f.Rules = rules
	act := a.st.newAction("set_firewall_rules", ref("firewall", f.ID))
	actions := []schema.Action{}
	var failed error
	for _, res := range f.AppliedTo {
		apply := a.st.newAction("apply_firewall", ref("firewall", f.ID), ref("server", res.Server.ID))
		err := a.enforce(res.Server.ID)
		finishAction(apply, err)
		failed = cmpErr(failed, err)
		actions = append(actions, *apply)
	}
	finishAction(act, failed)
	a.st.save()
	return 201, schema.FirewallActionSetRulesResponse{Actions: append([]schema.Action{*act}, actions...)}, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// attach applies the firewall to a server and enforces it; the caller holds mu.
func (a *api) attach(f *schema.Firewall, sid int64) *schema.Action {
	act := a.st.newAction("apply_firewall", ref("firewall", f.ID), ref("server", sid))
	if !slices.ContainsFunc(f.AppliedTo, func(x schema.FirewallResource) bool { return x.Server != nil && x.Server.ID == sid }) {
		f.AppliedTo = append(f.AppliedTo, schema.FirewallResource{Type: "server", Server: &schema.FirewallResourceServer{ID: sid}})
		srv := a.st.s.Servers[sid]
		srv.Schema.PublicNet.Firewalls = append(srv.Schema.PublicNet.Firewalls, schema.ServerFirewall{ID: f.ID, Status: "applied"})
	}
	finishAction(act, a.enforce(sid))
	return act
}

// detach removes the firewall from a server and enforces what remains; the caller holds mu.
func (a *api) detach(f *schema.Firewall, sid int64) *schema.Action {
	act := a.st.newAction("remove_firewall", ref("firewall", f.ID), ref("server", sid))
	f.AppliedTo = slices.DeleteFunc(f.AppliedTo, func(x schema.FirewallResource) bool { return x.Server != nil && x.Server.ID == sid })
	var err error
	if srv, ok := a.st.s.Servers[sid]; ok {
		srv.Schema.PublicNet.Firewalls = slices.DeleteFunc(srv.Schema.PublicNet.Firewalls, func(x schema.ServerFirewall) bool { return x.ID == f.ID })
		err = a.enforce(sid)
	}
	finishAction(act, err)
	return act
}

// enforce puts the union of the server's firewalls in force at its address; the caller holds mu.
func (a *api) enforce(sid int64) error {
	srv := a.st.s.Servers[sid]
	addr := srv.Schema.PublicNet.IPv4.IP
	if addr == "" {
		return nil
	}
	var rules []schema.FirewallRule
	for _, sf := range srv.Schema.PublicNet.Firewalls {
		if f, ok := a.st.s.Firewalls[sf.ID]; ok {
			rules = append(rules, f.Rules...)
		}
	}
	return a.perimeter.Apply(srv.VPS, addr, srv.Routed6, len(srv.Schema.PublicNet.Firewalls) > 0, rules)
}

func (a *api) applyFirewall(r *http.Request) (int, any, error) {
	var req schema.FirewallActionApplyToResourcesRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	f, err := a.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	ids, err := a.serverRefs("apply_to", req.ApplyTo)
	if err != nil {
		return 0, nil, err
	}
	actions := []schema.Action{}
	for _, sid := range ids {
		if slices.ContainsFunc(f.AppliedTo, func(x schema.FirewallResource) bool { return x.Server.ID == sid }) {
			return 0, nil, &apiError{status: 422, code: "firewall_already_applied", message: fmt.Sprintf("firewall %d is already applied to server %d", f.ID, sid)}
		}
	}
	for _, sid := range ids {
		actions = append(actions, *a.attach(f, sid))
	}
	a.st.save()
	return 201, schema.FirewallActionApplyToResourcesResponse{Actions: actions}, nil
}

func (a *api) removeFirewall(r *http.Request) (int, any, error) {
	var req schema.FirewallActionRemoveFromResourcesRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	f, err := a.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	ids, err := a.serverRefs("remove_from", req.RemoveFrom)
	if err != nil {
		return 0, nil, err
	}
	for _, sid := range ids {
		if !slices.ContainsFunc(f.AppliedTo, func(x schema.FirewallResource) bool { return x.Server.ID == sid }) {
			return 0, nil, &apiError{status: 422, code: "firewall_already_removed", message: fmt.Sprintf("firewall %d is not applied to server %d", f.ID, sid)}
		}
	}
	actions := []schema.Action{}
	for _, sid := range ids {
		actions = append(actions, *a.detach(f, sid))
	}
	a.st.save()
	return 201, schema.FirewallActionRemoveFromResourcesResponse{Actions: actions}, nil
}
