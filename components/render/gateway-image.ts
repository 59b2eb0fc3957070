// The gateway image built on the host (citadel:gateway.build, the default): a host step that sends
// the files of images/caddy in its own text and runs `docker build` there. One mechanism for every
// target: the real Pulumi plugins run it the same way as the lab's, and a reviewer reads the Dockerfile
// and go.sum lines that change in the preview, like any other step. The container runs the image ID
// the step prints (never a tag a registry could answer for).
import * as fs from "node:fs";
import * as path from "node:path";
import type { StackConfig } from "../config";
import { GATEWAY_BUILD_LABEL, GATEWAY_BUILD_TIMEOUT_SECONDS, GATEWAY_IMAGE_STEP } from "../posture/facts";
import { sha256 } from "./script";
import { renderTemplate, TEMPLATES_DIR, hostLib } from "./template";
import type { HostScript } from "./types";

/** The product's Caddy image source. */
export const CADDY_IMAGE_DIR = path.resolve(__dirname, "..", "..", "images", "caddy");
/** What the Dockerfile reads (build.sh is the lab's host build, not part of the image). */
export const CADDY_BUILD_CONTEXT = ["Dockerfile", "go.mod", "go.sum", "main.go"] as const;
const TEMPLATE = "caddy/gateway-image.sh.hbs";
/**
 * The step's command is one argument of the remote shell (sshd runs `bash -c <command>`), and Linux
 * caps one argument at 128 KiB: the build context must stay well below that.
 */
export const GATEWAY_IMAGE_SCRIPT_MAX_BYTES = 100 * 1024;

/** The Dockerfile's build arguments as the config declares them (unset: the Dockerfile's defaults). */
export function gatewayBuildArgs(c: StackConfig): Record<string, string> {
    const f = c.gateway.buildFrom;
    const out: Record<string, string> = {};
    if (f.goImage !== undefined) out.GO_IMAGE = f.goImage;
    if (f.baseImage !== undefined) out.BASE_IMAGE = f.baseImage;
    if (f.goProxy !== undefined) out.GOPROXY = f.goProxy;
    return out;
}

interface ContextFile {
    name: string;
    content: string;
}

/** images/caddy's build context, with line endings as the image needs them (a CRLF checkout builds the same image). */
export const gatewayBuildContext = (): ContextFile[] => CADDY_BUILD_CONTEXT.map((name) => ({ name, content: fs.readFileSync(path.join(CADDY_IMAGE_DIR, name), "utf8").replace(/\r\n/g, "\n") }));

/** The hash of the context files alone (the review tells a source change from a config change by it). */
export const gatewayBuildFilesSha256 = (files = gatewayBuildContext()): string => sha256(JSON.stringify(files.map((f) => [f.name, sha256(f.content)])));

/**
 * The hash a built image is labelled with: everything that decides the image (the context files, the
 * tag, the build arguments, and the step's own text, which holds the `docker build` flags), nothing else.
 */
export function gatewayBuildInputs(c: StackConfig, image: string, files = gatewayBuildContext()): string {
    const template = sha256(fs.readFileSync(path.join(TEMPLATES_DIR, TEMPLATE), "utf8"));
    return sha256(JSON.stringify({ image, args: gatewayBuildArgs(c), files: gatewayBuildFilesSha256(files), template }));
}

/** The image ID the step prints last (built or unchanged): what the gateway container runs. */
export function builtImageId(stdout: string): string {
    const ids = stdout.match(/sha256:[0-9a-f]{64}/g);
    if (!ids) throw new Error(`citadel: the ${GATEWAY_IMAGE_STEP} step printed no image ID: ${stdout.trim().slice(-300)}`);
    return ids[ids.length - 1];
}

export function renderGatewayImageScript(c: StackConfig, image: string): HostScript {
    const files = gatewayBuildContext();
    const args = gatewayBuildArgs(c);
    const inputs = gatewayBuildInputs(c, image, files);
    const script = renderTemplate(TEMPLATE, {
        lib: hostLib(),
        image,
        label: GATEWAY_BUILD_LABEL,
        inputs,
        timeout: GATEWAY_BUILD_TIMEOUT_SECONDS,
        buildArgs: Object.entries(args).map(([k, v]) => `${k}=${v}`),
        files,
    });
    if (Buffer.byteLength(script) > GATEWAY_IMAGE_SCRIPT_MAX_BYTES) {
        throw new Error(`citadel: the ${GATEWAY_IMAGE_STEP} step is ${Buffer.byteLength(script)} bytes, over ${GATEWAY_IMAGE_SCRIPT_MAX_BYTES}: images/caddy's files no longer fit one SSH command; send them another way`);
    }
    const from = Object.keys(args).length ? ` with ${Object.entries(args).map(([k, v]) => `${k}=${v}`).join(", ")}` : "";
    return {
        name: GATEWAY_IMAGE_STEP,
        description: `gateway: ${image} built on the host from images/caddy (${CADDY_BUILD_CONTEXT.join(", ")})${from}; skipped when the image already carries ${GATEWAY_BUILD_LABEL}=${inputs.slice(0, 12)}`,
        script,
        files: [],
        sources: files.map((f) => ({ name: `images/caddy/${f.name}`, sha256: sha256(f.content) })),
    };
}
