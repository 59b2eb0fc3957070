// The gateway image built on the host (citadel:gateway.build, the default): a host step that sends
// the files of images/caddy in its own text and runs `docker build` there. One mechanism for every
// target: the real Pulumi plugins run it the same way as the lab's, and a reviewer reads the Dockerfile
// and go.sum lines that change in the preview, like any other step.
import * as fs from "node:fs";
import * as path from "node:path";
import type { StackConfig } from "../config";
import { GATEWAY_BUILD_LABEL, GATEWAY_BUILD_TIMEOUT_SECONDS, GATEWAY_IMAGE_STEP } from "../posture/facts";
import { sha256 } from "./script";
import { renderTemplate } from "./template";
import type { HostScript } from "./types";

/** The product's Caddy image source. */
export const CADDY_IMAGE_DIR = path.resolve(__dirname, "..", "..", "images", "caddy");
/** What the Dockerfile reads (build.sh is the lab's host build, not part of the image). */
export const CADDY_BUILD_CONTEXT = ["Dockerfile", "go.mod", "go.sum", "main.go"] as const;

/** The Dockerfile's build arguments as the config declares them (unset: the Dockerfile's defaults). */
export function gatewayBuildArgs(c: StackConfig): Record<string, string> {
    const f = c.gateway.buildFrom;
    const out: Record<string, string> = {};
    if (f.goImage !== undefined) out.GO_IMAGE = f.goImage;
    if (f.baseImage !== undefined) out.BASE_IMAGE = f.baseImage;
    if (f.goProxy !== undefined) out.GOPROXY = f.goProxy;
    return out;
}

const contextFiles = () => CADDY_BUILD_CONTEXT.map((name) => ({ name, content: fs.readFileSync(path.join(CADDY_IMAGE_DIR, name), "utf8") }));

/** The hash a built image is labelled with: everything that decides the image, and nothing else. */
export function gatewayBuildInputs(c: StackConfig, image: string, files = contextFiles()): string {
    return sha256(JSON.stringify({ image, args: gatewayBuildArgs(c), files: files.map((f) => [f.name, sha256(f.content)]) }));
}

export function renderGatewayImageScript(c: StackConfig, image: string): HostScript {
    const files = contextFiles();
    const args = gatewayBuildArgs(c);
    const inputs = gatewayBuildInputs(c, image, files);
    const script = renderTemplate("caddy/gateway-image.sh.hbs", {
        lib: renderTemplate("host/lib.sh.hbs", {}),
        image,
        label: GATEWAY_BUILD_LABEL,
        inputs,
        timeout: GATEWAY_BUILD_TIMEOUT_SECONDS,
        buildArgs: Object.entries(args).map(([k, v]) => `${k}=${v}`),
        files,
    });
    const from = Object.keys(args).length ? ` with ${Object.entries(args).map(([k, v]) => `${k}=${v}`).join(", ")}` : "";
    return {
        name: GATEWAY_IMAGE_STEP,
        description: `gateway: ${image} built on the host from images/caddy (${CADDY_BUILD_CONTEXT.join(", ")})${from}; skipped when the image already carries ${GATEWAY_BUILD_LABEL}=${inputs.slice(0, 12)}`,
        script,
        files: [],
    };
}
