package main

// Servers: creating one takes a lab address, puts its firewalls in force at that address, then
// boots a real lab VPS from the server's user_data in the background while the create_server
// action runs; deleting one removes the VPS and its perimeter. Power actions switch the VPS.

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

var hostnameRe = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)

const maxUserData = 32 * 1024

func (a *api) listServers(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	sel, err := parseLabelSelector(q.Get("label_selector"))
	if err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	var items []schema.Server
	for _, id := range sortedIDs(a.st.s.Servers) {
		s := a.st.s.Servers[id].Schema
		if (q.Has("name") && q.Get("name") != s.Name) || (q.Has("status") && !slices.Contains(q["status"], s.Status)) || !sel.matches(s.Labels) {
			continue
		}
		items = append(items, s)
	}
	page, meta, err := paginate(q, items)
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		schema.ServerListResponse
		Meta schema.Meta `json:"meta"`
	}{schema.ServerListResponse{Servers: nonNil(page)}, meta}, nil
}

// network6 is server id's IPv6 /64 inside ipv6Base (id in its 4th group); false without a base or
// for an id that does not fit.
func (a *api) network6(id int64) (netip.Prefix, bool) {
	if !a.ipv6Base.IsValid() || a.ipv6Base.Bits() > 48 || id <= 0 || id > 0xffff {
		return netip.Prefix{}, false
	}
	b := a.ipv6Base.Masked().Addr().As16()
	b[6], b[7] = byte(id>>8), byte(id)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), true
}

// freeAddress is the first pool address no server holds; the caller holds mu.
func (a *api) freeAddress() (netip.Addr, bool) {
	used := map[string]bool{}
	for _, s := range a.st.s.Servers {
		used[s.Schema.PublicNet.IPv4.IP] = true
	}
	for _, ip := range a.pool {
		if !used[ip.String()] {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func (a *api) createServer(r *http.Request) (int, any, error) {
	var req schema.ServerCreateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if !hostnameRe.MatchString(req.Name) {
		return 0, nil, invalidInput("name", "must be a valid hostname")
	}
	st := serverTypeByIDOrName(req.ServerType)
	if st == nil {
		return 0, nil, invalidInput("server_type", fmt.Sprintf("server type %s not found", idOrName(req.ServerType)))
	}
	img := imageFor(req.Image, st.Architecture)
	if img == nil {
		return 0, nil, invalidInput("image", fmt.Sprintf("image %s not found for architecture %s", idOrName(req.Image), st.Architecture))
	}
	loc := locationByName("fsn1")
	if req.Location != "" {
		if loc = locationByName(req.Location); loc == nil {
			return 0, nil, invalidInput("location", fmt.Sprintf("location %s not found", req.Location))
		}
	}
	if len(req.UserData) > maxUserData {
		return 0, nil, invalidInput("user_data", fmt.Sprintf("must be at most %d bytes", maxUserData))
	}
	if len(req.Volumes) > 0 || len(req.Networks) > 0 || req.PlacementGroup != 0 {
		return 0, nil, invalidInput("networks", "volumes, networks and placement groups are not served by the lab double")
	}
	if req.PublicNet != nil && (req.PublicNet.IPv4ID != 0 || req.PublicNet.IPv6ID != 0) {
		return 0, nil, invalidInput("public_net", "primary IPs are not served by the lab double")
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
	for _, s := range a.st.s.Servers {
		if s.Schema.Name == req.Name {
			return 0, nil, uniqueness(fmt.Sprintf("server name is already used: %s", req.Name))
		}
	}
	for _, k := range req.SSHKeys {
		if _, ok := a.st.s.SSHKeys[k]; !ok {
			return 0, nil, invalidInput("ssh_keys", fmt.Sprintf("SSH key %d not found", k))
		}
	}
	var firewalls []*schema.Firewall
	for _, f := range req.Firewalls {
		fw, ok := a.st.s.Firewalls[f.Firewall]
		if !ok {
			return 0, nil, invalidInput("firewalls", fmt.Sprintf("firewall %d not found", f.Firewall))
		}
		firewalls = append(firewalls, fw)
	}
	enableV4 := req.PublicNet == nil || req.PublicNet.EnableIPv4
	enableV6 := req.PublicNet == nil || req.PublicNet.EnableIPv6
	var addr netip.Addr
	if enableV4 {
		var ok bool
		if addr, ok = a.freeAddress(); !ok {
			return 0, nil, &apiError{status: 422, code: "resource_unavailable", message: "no lab address left for a public IPv4"}
		}
	}

	id := a.st.id()
	srv := &server{UserData: req.UserData, VPS: fmt.Sprintf("%s-%d", a.vpsPrefix, id)}
	img2 := *img
	srv.Schema = schema.Server{
		ID: id, Name: req.Name, Status: "initializing", Created: time.Now().UTC(),
		PublicNet:  schema.ServerPublicNet{FloatingIPs: []int64{}, Firewalls: []schema.ServerFirewall{}, IPv6: schema.ServerPublicNetIPv6{DNSPtr: []schema.ServerPublicNetIPv6DNSPtr{}}},
		PrivateNet: []schema.ServerPrivateNet{}, ServerType: *st, IncludedTraffic: uint64(st.IncludedTraffic),
		Location: *loc, Image: &img2, Labels: labels, Volumes: []int64{}, LoadBalancers: []int64{},
		PrimaryDiskSize: st.Disk,
	}
	if enableV4 {
		srv.Schema.PublicNet.IPv4 = schema.ServerPublicNetIPv4{ID: a.st.id(), IP: addr.String(), DNSPtr: "static." + addr.String() + ".lab.invalid"}
	}
	if enableV6 {
		network := fmt.Sprintf("2001:db8:%x::/64", id)
		if a.ipv6Base.IsValid() {
			n, ok := a.network6(id)
			if !ok {
				return 0, nil, &apiError{status: 422, code: "resource_unavailable", message: fmt.Sprintf("no lab IPv6 /64 left for server %d in %s", id, a.ipv6Base)}
			}
			// Routed by the lab to the machine, which holds its ::1 (Hetzner's convention, what the
			// provider reports as ipv6_address).
			network, srv.Routed6 = n.String(), n.String()
		}
		// Otherwise a documentation prefix: the lab routes no IPv6 to the VPS, and says so by the address.
		srv.Schema.PublicNet.IPv6 = schema.ServerPublicNetIPv6{ID: a.st.id(), IP: network, DNSPtr: []schema.ServerPublicNetIPv6DNSPtr{}}
	}
	a.st.s.Servers[id] = srv
	act := a.st.newAction("create_server", ref("server", id))
	for _, fw := range firewalls {
		// Before the machine exists: its perimeter is in force from its first packet.
		_ = a.attach(fw, id)
	}
	start := req.StartAfterCreate == nil || *req.StartAfterCreate
	a.st.save()
	resp := schema.ServerCreateResponse{Server: srv.Schema, Action: *act, NextActions: []schema.Action{}}
	if !start {
		srv.Schema.Status = "off"
		finishAction(act, nil)
		resp.Server, resp.Action = srv.Schema, *act
		return 201, resp, nil
	}
	a.background(srv, act, "starting", "running", "off", func(ctx context.Context) error { return a.boot(ctx, srv) })
	return 201, resp, nil
}

func idOrName(v schema.IDOrName) string {
	if v.ID != 0 {
		return fmt.Sprint(v.ID)
	}
	return v.Name
}

// boot starts the server's machine from its user_data: first boot, or power-on of one never booted.
func (a *api) boot(ctx context.Context, srv *server) error {
	a.st.mu.Lock()
	spec := MachineSpec{VPS: srv.VPS, Address: srv.Schema.PublicNet.IPv4.IP, Network6: srv.Routed6, UserData: srv.UserData}
	err := a.enforce(srv.Schema.ID)
	a.st.mu.Unlock()
	if err != nil {
		return fmt.Errorf("perimeter: %w", err)
	}
	if err := a.machines.Boot(ctx, spec); err != nil {
		return err
	}
	a.st.mu.Lock()
	srv.Booted = true
	a.st.mu.Unlock()
	return nil
}

// background runs a machine operation while the action runs: status `during`, then `after` on
// success or `failed` on error, and the action finished with the outcome.
func (a *api) background(srv *server, act *schema.Action, during, after, failed string, op func(context.Context) error) {
	srv.Schema.Status = during
	a.ops.Add(1)
	go func() {
		defer a.ops.Done()
		srv.busy.Lock()
		defer srv.busy.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), a.opTimeout)
		defer cancel()
		err := op(ctx)
		a.st.mu.Lock()
		defer a.st.mu.Unlock()
		if err != nil {
			srv.Schema.Status = failed
		} else {
			srv.Schema.Status = after
		}
		finishAction(act, err)
		a.st.save()
	}()
}

func (a *api) server(r *http.Request) (*server, error) {
	return byPathID(r, a.st.s.Servers, "server")
}

func (a *api) getServer(r *http.Request) (int, any, error) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	s, err := a.server(r)
	if err != nil {
		return 0, nil, err
	}
	return 200, schema.ServerGetResponse{Server: s.Schema}, nil
}

func (a *api) updateServer(r *http.Request) (int, any, error) {
	var req schema.ServerUpdateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	s, err := a.server(r)
	if err != nil {
		return 0, nil, err
	}
	if req.Name != "" && req.Name != s.Schema.Name {
		if !hostnameRe.MatchString(req.Name) {
			return 0, nil, invalidInput("name", "must be a valid hostname")
		}
		for _, o := range a.st.s.Servers {
			if o.Schema.Name == req.Name {
				return 0, nil, uniqueness(fmt.Sprintf("server name is already used: %s", req.Name))
			}
		}
		s.Schema.Name = req.Name
	}
	if req.Labels != nil {
		if err := validLabels(*req.Labels); err != nil {
			return 0, nil, err
		}
		s.Schema.Labels = *req.Labels
	}
	a.st.save()
	return 200, schema.ServerUpdateResponse{Server: s.Schema}, nil
}

func (a *api) deleteServer(r *http.Request) (int, any, error) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	s, err := a.server(r)
	if err != nil {
		return 0, nil, err
	}
	if s.Schema.Protection.Delete {
		return 0, nil, &apiError{status: 423, code: "protected", message: "server is delete-protected"}
	}
	act := a.st.newAction("delete_server", ref("server", s.Schema.ID))
	s.Schema.Status = "deleting"
	a.ops.Add(1)
	go func() {
		defer a.ops.Done()
		// Waits for a boot or power action still running on this server.
		s.busy.Lock()
		defer s.busy.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), a.opTimeout)
		defer cancel()
		err := a.machines.Remove(ctx, s.VPS, s.Routed6)
		a.st.mu.Lock()
		defer a.st.mu.Unlock()
		if err == nil {
			err = a.perimeter.Remove(s.VPS)
		}
		if err == nil {
			for _, sf := range s.Schema.PublicNet.Firewalls {
				if f, ok := a.st.s.Firewalls[sf.ID]; ok {
					f.AppliedTo = slices.DeleteFunc(f.AppliedTo, func(x schema.FirewallResource) bool { return x.Server != nil && x.Server.ID == s.Schema.ID })
				}
			}
			delete(a.st.s.Servers, s.Schema.ID)
		} else {
			s.Schema.Status = "unknown"
		}
		finishAction(act, err)
		a.st.save()
	}()
	a.st.save()
	return 200, schema.ServerDeleteResponse{Action: *act}, nil
}

// powerAction serves poweron, poweroff, shutdown, reboot and reset on the server's machine.
func (a *api) powerAction(op string) func(*http.Request) (int, any, error) {
	command := map[string]string{"poweron": "start_server", "poweroff": "stop_server", "shutdown": "shutdown_server", "reboot": "reboot_server", "reset": "reset_server"}[op]
	return func(r *http.Request) (int, any, error) {
		a.st.mu.Lock()
		defer a.st.mu.Unlock()
		s, err := a.server(r)
		if err != nil {
			return 0, nil, err
		}
		if s.Schema.Status == "deleting" || s.Schema.Status == "initializing" || s.Schema.Status == "starting" || s.Schema.Status == "stopping" {
			return 0, nil, &apiError{status: 423, code: "locked", message: fmt.Sprintf("server is locked: it is %s", s.Schema.Status)}
		}
		act := a.st.newAction(command, ref("server", s.Schema.ID))
		switch {
		case op == "poweron" && !s.Booted:
			a.background(s, act, "starting", "running", "off", func(ctx context.Context) error { return a.boot(ctx, s) })
		case op == "poweron":
			a.background(s, act, "starting", "running", "off", func(ctx context.Context) error { return a.machines.Power(ctx, s.VPS, "on", s.Routed6) })
		case op == "poweroff" || op == "shutdown":
			a.background(s, act, "stopping", "off", s.Schema.Status, func(ctx context.Context) error {
				if !s.Booted {
					return nil
				}
				return a.machines.Power(ctx, s.VPS, "off", s.Routed6)
			})
		default: // reboot, reset: a running server comes back running; an off one is started
			a.background(s, act, "starting", "running", "off", func(ctx context.Context) error {
				if !s.Booted {
					return a.boot(ctx, s)
				}
				return a.machines.Power(ctx, s.VPS, "reboot", s.Routed6)
			})
		}
		a.st.save()
		return 201, struct {
			Action schema.Action `json:"action"`
		}{*act}, nil
	}
}

// parsePool reads "FIRST-LAST" (IPv4, inclusive) into the list of lab addresses.
func parsePool(spec string) ([]netip.Addr, error) {
	first, last, ok := strings.Cut(spec, "-")
	a, err1 := netip.ParseAddr(strings.TrimSpace(first))
	b, err2 := netip.ParseAddr(strings.TrimSpace(last))
	if !ok || err1 != nil || err2 != nil || !a.Is4() || !b.Is4() || b.Less(a) {
		return nil, fmt.Errorf("address pool %q: want FIRST-LAST IPv4 addresses, FIRST <= LAST", spec)
	}
	var out []netip.Addr
	for ip := a; ; ip = ip.Next() {
		out = append(out, ip)
		if ip == b || len(out) > 4096 {
			break
		}
	}
	return out, nil
}
