// Pulumi mocks that record every registered resource, and fake secret values that are easy to find
// anywhere they should not be.
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
    type: string;
    name: string;
    inputs: Record<string, any>;
    /** The resource object, to inspect its Outputs (secret-ness). */
    resource?: pulumi.Resource;
}

export const recorded: Recorded[] = [];

// Secret inputs reach mocks wrapped in Pulumi's wire signature; unwrap them so tests read the value.
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";
function unwrapSecrets(v: any): any {
    if (Array.isArray(v)) return v.map(unwrapSecrets);
    if (v && typeof v === "object") {
        if (v[SECRET_SIG] === SECRET_VALUE) return unwrapSecrets(v.value);
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
    }
    return v;
}

/** Every generated secret in the mocks contains this marker, so a leak is a substring search. */
export const SECRET_MARKER = "LEAKCANARY";
let counter = 0;

export const FAKE_ADDRESS = "198.51.100.7";
export const FAKE_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz5cN0FakeHostKeyForUnitTestsOnly0000000";

pulumi.runtime.setMocks(
    {
        newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, any> } {
            recorded.push({ type: args.type, name: args.name, inputs: unwrapSecrets(args.inputs) });
            const state: Record<string, any> = { ...args.inputs };
            switch (args.type) {
                case "random:index/randomPassword:RandomPassword":
                    state.result = `${SECRET_MARKER}pw${++counter}`;
                    break;
                case "random:index/randomBytes:RandomBytes":
                    state.hex = `${SECRET_MARKER}hex${++counter}`;
                    state.base64 = `${SECRET_MARKER}b64${counter}`;
                    break;
                case "hcloud:index/server:Server":
                    state.ipv4Address = FAKE_ADDRESS;
                    break;
                case "command:local:Command":
                    state.stdout = FAKE_HOST_KEY + "\n";
                    break;
                case "docker:index/remoteImage:RemoteImage":
                    state.imageId = `sha256:${"0".repeat(64)}`;
                    break;
                case "command:remote:Command":
                    // The gateway-image step prints the ID of the image it built (the container runs it).
                    state.stdout = args.name === "gateway-image" ? `citadel: gateway-image: built x in 1s: sha256:${"1".repeat(64)}\n` : "";
                    break;
            }
            // Hetzner ids are numbers.
            return { id: args.type.startsWith("hcloud:") ? String(1000 + ++counter) : `${args.name}-id`, state };
        },
        call(args: pulumi.runtime.MockCallArgs) {
            return args.inputs;
        },
    },
    "citadel",
    "unit",
    false,
);

// Settling: the snapshot a test reads must hold every resource the program registers, however late.
// A Pulumi program registers asynchronously: a resource built inside an `apply` reaches the mocks only
// after that callback ran, which may be long after the program returned. The real engine waits for
// the process's event loop to empty; in a test process we wait for the two things that can still
// register something:
//   - registrations (and invokes) in flight: the SDK counts them itself (rpcKeepAlive) and
//     `runtime.disconnect()` drains them with `waitForRPCs()`; we call that same function;
//   - `apply` callbacks not finished yet: the SDK does not count those, so every apply is tracked
//     here (a resource constructed inside one starts its registration before the callback ends).
// A settle that cannot reach that point throws instead of handing back a short snapshot.
const waitForRPCs: () => Promise<void> = (pulumi.runtime as unknown as { waitForRPCs?: () => Promise<void> }).waitForRPCs!;
if (typeof waitForRPCs !== "function") throw new Error("@pulumi/pulumi no longer exports runtime.waitForRPCs: settle() needs another way to drain registrations");

const pendingApplies = new Set<Promise<unknown>>();
{
    const proto = (pulumi.Output as unknown as { prototype: { apply: (...a: unknown[]) => pulumi.Output<unknown> } }).prototype;
    const apply = proto.apply;
    if (typeof apply !== "function") throw new Error("@pulumi/pulumi Output.prototype.apply is gone: settle() cannot track applies");
    proto.apply = function (this: pulumi.Output<unknown>, ...args: unknown[]) {
        const result = apply.apply(this, args);
        // The applied value is ready only once the callback (and any Output it returned) is done.
        const done: Promise<unknown> = (result as unknown as { promise(withUnknowns?: boolean): Promise<unknown> })
            .promise(true)
            .then(
                () => undefined,
                () => undefined, // the program's own chain reports the error; here it only means "finished"
            )
            .finally(() => pendingApplies.delete(done));
        pendingApplies.add(done);
        return result;
    };
}

/**
 * Waits until the program has registered everything it will: no registration or invoke in flight,
 * no apply callback pending, and one more full round that changed nothing. Throws after `timeoutMs`.
 */
export async function settle(timeoutMs = 60_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
            () => reject(new Error(`settle: the program was still registering after ${timeoutMs} ms (${pendingApplies.size} apply callbacks pending, ${recorded.length} resources so far)`)),
            timeoutMs,
        );
    });
    try {
        for (;;) {
            const seen = recorded.length;
            await Promise.race([waitForRPCs(), deadline]);
            if (pendingApplies.size > 0) {
                await Promise.race([Promise.all([...pendingApplies]), deadline]);
                continue;
            }
            // Nothing pending: one more drain proves nothing was started meanwhile.
            await Promise.race([waitForRPCs(), deadline]);
            if (pendingApplies.size === 0 && recorded.length === seen) return;
        }
    } finally {
        clearTimeout(timer);
    }
}

export function valueOf<T>(o: pulumi.Input<T>): Promise<T> {
    return new Promise((resolve) => pulumi.output(o).apply((v) => resolve(v as T)));
}

export async function isSecret(o: pulumi.Output<unknown>): Promise<boolean> {
    return (await (o as any).isSecret) === true;
}

export function ofType(type: string): Recorded[] {
    return recorded.filter((r) => r.type === type);
}

export function byName(type: string, name: string): Recorded {
    const r = recorded.find((x) => x.type === type && x.name === name);
    if (!r) throw new Error(`no ${type} named ${name}; have: ${recorded.filter((x) => x.type === type).map((x) => x.name).join(", ")}`);
    return r;
}

/** Resource inputs as the program passed them (Outputs intact, so secret-ness can be checked). */
export const props: { type: string; name: string; props: Record<string, any>; resource: pulumi.Resource; opts: pulumi.ResourceOptions }[] = [];
/** Pass as `transformations` of the top component: it sees every child's inputs with Outputs intact. */
export const recordProps: pulumi.ResourceTransformation = (args) => {
    props.push({ type: args.type, name: args.name, props: args.props as Record<string, any>, resource: args.resource, opts: args.opts });
    return undefined;
};
