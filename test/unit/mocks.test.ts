// The mocks' settle(): the snapshot the stack tests read (the secret-leak test above all) holds every
// resource the program registers, including ones registered late inside an `apply`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { recorded, settle } from "./mocks";

const T = "citadel-test:index:Thing";
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
class Thing extends pulumi.CustomResource {
    constructor(name: string, props: Record<string, pulumi.Input<unknown>> = {}) {
        super(T, name, props);
    }
}
const names = () => recorded.filter((r) => r.type === T).map((r) => r.name).sort();

describe("mocks: settle waits for the program to finish registering", () => {
    it("includes resources registered inside applies after a delay, nested, and from invokes", async () => {
        recorded.length = 0;
        const early = new Thing("early", { n: 1 });
        // Detached applies (nobody holds the result), as a program may write them.
        early.id.apply(async (id) => {
            await delay(100);
            const late = new Thing("late", { after: id });
            late.id.apply(async () => {
                await delay(100);
                new Thing("later", {});
            });
        });
        pulumi.output(pulumi.runtime.invoke("citadel-test:index:lookup", { q: "x" })).apply(async (r) => {
            await delay(150);
            new Thing(`from-invoke-${r.q}`, {});
        });
        const t = Date.now();
        await settle();
        assert.deepEqual(names(), ["early", "from-invoke-x", "late", "later"]);
        assert.ok(Date.now() - t >= 200, "settle returned before the nested registration could have happened");
    });

    it("throws instead of returning a short snapshot when registering does not finish in time", async () => {
        recorded.length = 0;
        const r = new Thing("slow-parent", {});
        r.id.apply(async () => {
            await delay(400);
            new Thing("slow", {});
        });
        await assert.rejects(settle(100), /still registering after 100 ms/);
        await settle();
        assert.deepEqual(names(), ["slow", "slow-parent"]);
    });
});
