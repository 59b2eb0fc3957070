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
                case "docker:index/image:Image":
                    state.imageName = args.inputs.imageName;
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

/** Waits until no new resource has been registered for a while (mocks register asynchronously). */
export async function settle(): Promise<void> {
    let last = -1;
    for (let i = 0; i < 200 && last !== recorded.length; i++) {
        last = recorded.length;
        await new Promise((r) => setTimeout(r, 20));
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
export const props: { type: string; name: string; props: Record<string, any>; resource: pulumi.Resource }[] = [];
/** Pass as `transformations` of the top component: it sees every child's inputs with Outputs intact. */
export const recordProps: pulumi.ResourceTransformation = (args) => {
    props.push({ type: args.type, name: args.name, props: args.props as Record<string, any>, resource: args.resource });
    return undefined;
};
