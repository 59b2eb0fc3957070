package main

// The double's state: what the Hetzner Cloud project holds (SSH keys, firewalls, servers, actions)
// in the API's own schema types, plus what only the lab needs (a server's user_data, its VPS name).
// One mutex guards it all; it is saved as JSON after every change when a state file is given, so
// a restarted double still knows the servers (and their VPSes) a stack created.

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

type server struct {
	Schema schema.Server `json:"schema"`
	// What the machine boots from (never returned by the API, as on Hetzner).
	UserData string `json:"user_data"`
	// The lab VPS (container) behind this server.
	VPS string `json:"vps"`
	// The server's IPv6 /64 when the lab routes it to the machine ("" for the unrouted documentation prefix).
	Routed6 string `json:"routed6,omitempty"`
	// Whether the machine was ever started (start_after_create false leaves it off until poweron).
	Booted bool `json:"booted"`
	// Held while a machine operation (boot, power, delete) runs, so they never overlap.
	busy sync.Mutex
}

type state struct {
	NextID    int64                      `json:"next_id"`
	SSHKeys   map[int64]*schema.SSHKey   `json:"ssh_keys"`
	Firewalls map[int64]*schema.Firewall `json:"firewalls"`
	Servers   map[int64]*server          `json:"servers"`
	Actions   map[int64]*schema.Action   `json:"actions"`
}

type store struct {
	mu   sync.Mutex
	file string
	s    state
}

func newStore(file string) (*store, error) {
	st := &store{file: file, s: state{NextID: 1, SSHKeys: map[int64]*schema.SSHKey{}, Firewalls: map[int64]*schema.Firewall{}, Servers: map[int64]*server{}, Actions: map[int64]*schema.Action{}}}
	if file == "" {
		return st, nil
	}
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &st.s); err != nil {
		return nil, fmt.Errorf("state file %s: %w", file, err)
	}
	// An action that was running when the double stopped will never finish: say so.
	for _, a := range st.s.Actions {
		if a.Status == "running" {
			finishAction(a, fmt.Errorf("the API double restarted while this action ran"))
		}
	}
	return st, nil
}

// save writes the state; the caller holds mu.
func (st *store) save() {
	if st.file == "" {
		return
	}
	b, err := json.MarshalIndent(&st.s, "", "  ")
	if err == nil {
		tmp := st.file + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, st.file)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "hcloud-double: saving state: %v\n", err)
	}
}

// id returns a fresh ID; IDs are unique across resource kinds, which the API allows.
func (st *store) id() int64 {
	id := st.s.NextID
	st.s.NextID++
	return id
}

// newAction records a running action on the given resources; the caller holds mu.
func (st *store) newAction(command string, resources ...schema.ActionResourceReference) *schema.Action {
	a := &schema.Action{ID: st.id(), Status: "running", Command: command, Started: time.Now().UTC(), Resources: resources}
	if a.Resources == nil {
		a.Resources = []schema.ActionResourceReference{}
	}
	st.s.Actions[a.ID] = a
	return a
}

// finishAction marks an action done (success, or error with err's message); the caller holds mu.
func finishAction(a *schema.Action, err error) {
	now := time.Now().UTC()
	a.Finished = &now
	a.Progress = 100
	if err != nil {
		a.Status = "error"
		a.Error = &schema.ActionError{Code: "action_failed", Message: err.Error()}
		return
	}
	a.Status = "success"
}

func ref(typ string, id int64) schema.ActionResourceReference {
	return schema.ActionResourceReference{ID: id, Type: typ}
}
