// The Citadel policy pack: `pulumi preview --policy-pack policy` (or `npm run preview -- --policy-pack
// policy` for the offline prod example) judges every resource against the rules in ./rules.ts.
// Constructing the pack starts its gRPC server, so only the engine loads this file; tests import ./rules.
import { PolicyPack } from "@pulumi/policy";
import { makePolicies } from "./rules";

new PolicyPack("citadel", {
    description: "Citadel's container, firewall and SSH hardening checklists, enforced on every resource of the stack and any added beside it.",
    enforcementLevel: "mandatory",
    policies: makePolicies(),
});
