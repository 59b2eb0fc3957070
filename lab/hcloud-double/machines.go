package main

// The machines behind servers are lab VPSes booted by the harness (lab/vps/, TypeScript): the
// double runs a driver command for each machine operation,
//
//	DRIVER boot            the MachineSpec as JSON on stdin; returns once cloud-init is done
//	DRIVER power NAME OP [NETWORK6]   OP is on, off or reboot; the VPS holds NETWORK6's ::1 again after it starts
//	DRIVER remove NAME [NETWORK6]     no error when the VPS is already gone; NETWORK6's route goes too
//
// and reports the driver's last output lines as the action's error when it fails.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

type commandMachines struct {
	driver []string
}

func (m *commandMachines) run(ctx context.Context, stdin []byte, args ...string) error {
	cmd := exec.CommandContext(ctx, m.driver[0], append(slices.Clone(m.driver[1:]), args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return fmt.Errorf("lab VPS %s: %v: %s", args[0], err, strings.Join(lines[max(0, len(lines)-8):], "\n"))
	}
	return nil
}

func (m *commandMachines) Boot(ctx context.Context, spec MachineSpec) error {
	b, _ := json.Marshal(spec)
	return m.run(ctx, b, "boot")
}

func (m *commandMachines) Power(ctx context.Context, vps, op, network6 string) error {
	return m.run(ctx, nil, withOptional([]string{"power", vps, op}, network6)...)
}

func (m *commandMachines) Remove(ctx context.Context, vps, network6 string) error {
	return m.run(ctx, nil, withOptional([]string{"remove", vps}, network6)...)
}

func withOptional(args []string, v string) []string {
	if v != "" {
		return append(args, v)
	}
	return args
}
