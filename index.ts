// Citadel: one `pulumi up` turns a fresh Debian 12 server into a defended host.
// Reads and validates the whole `citadel:` config first — a bad value stops here, naming the key
// and the fix, before any resource is registered — then wires the layers (components/stack.ts).
import * as pulumi from "@pulumi/pulumi";
import { loadProgramInputs } from "./components/program";
import { Citadel } from "./components/stack";

const inputs = loadProgramInputs(pulumi.runtime.allConfig());
const citadel = new Citadel("citadel", inputs);

export const target = citadel.outputs.target;
export const address = citadel.outputs.address;
/** hcloud: the server's public IPv6 address (the audit scans it when the sites are served over IPv6). */
export const address6 = citadel.outputs.address6;
export const sshHostKey = citadel.outputs.sshHostKey;
export const sshUser = citadel.outputs.sshUser;
export const sites = citadel.outputs.sites;
export const exposure = citadel.outputs.exposure;
export const intrusionEngine = citadel.outputs.intrusionEngine;
export const containers = citadel.outputs.containers;
export const secretRotation = citadel.outputs.secretRotation;
export const caddyfileSha256 = citadel.outputs.caddyfileSha256;
