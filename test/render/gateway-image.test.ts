// The gateway-image host step (citadel:gateway.build, the default) run for real against this
// machine's Docker engine: it builds images/caddy from the files it embeds, with the lab's toolchain
// image (the hcloud lab stack's buildFrom), labels the image with its inputs' hash, skips an
// up-to-date image, and leaves the previous image under the tag when a build fails.
//
// Needs Docker and the lab's golang image (built here if missing). In CI (CI=true) a missing engine
// fails the test; elsewhere it is skipped with the reason. Its images are removed at the end.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { describe, it } from "node:test";
import { parseConfigOrThrow } from "../../components/config";
import { GATEWAY_BUILD_LABEL, GATEWAY_IMAGE_STEP, GATEWAY_UID, posture } from "../../components/posture";
import { builtImageId, GATEWAY_IMAGE_SCRIPT_MAX_BYTES, gatewayBuildContext, gatewayBuildInputs, renderGatewayImageScript } from "../../components/render/gateway-image";
import { loadStackConfig } from "../../components/stackfile";
import { buildLocalImages, GOLANG_LOCAL_IMAGE } from "../../lab/images/build-local";
import { stopDockerd } from "../../lab/vps/dockerd";
import { BASE_IMAGE } from "../../lab/vps/image";
import { prodWith } from "../fixtures";
import { requireDocker, requireRoot, requireTool, run, shellcheck, tmpDir } from "../tools";

const LAB_FROM = { goImage: GOLANG_LOCAL_IMAGE, baseImage: BASE_IMAGE, goProxy: "off" };
const config = (image: string, buildFrom: Record<string, string> = LAB_FROM) => parseConfigOrThrow(prodWith({ gateway: { build: true, image, buildFrom } }));

function inspect(image: string, format: string): string | undefined {
    const r = run("docker", ["image", "inspect", "--format", format, image], { timeout: 30_000 });
    return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Runs the rendered step as root here (as `sudo -n /bin/bash -s` would on the host). */
function runStep(script: string): { code: number | null; out: string } {
    const r = run("bash", ["-s"], { input: script, timeout: 30 * 60_000 });
    return { code: r.code, out: r.stdout + r.stderr };
}

describe("gateway-image host step: the posture's build", () => {
    it("is in the posture when the image is built on the host (the default), with its inputs' hash; not otherwise", () => {
        const built = posture(config("citadel/caddy:t"));
        const step = built.hostSteps.find((s) => s.name === GATEWAY_IMAGE_STEP);
        assert.ok(step, "the default posture builds the gateway image");
        const gw = built.containers.find((x) => x.role === "gateway");
        assert.ok(gw?.build && gw.buildFrom);
        assert.ok(gw.imageAfter.includes(GATEWAY_IMAGE_STEP), "the image resource waits for the build");
        assert.ok(step.script.includes(gw.buildFrom.inputsSha256), "the script checks the label the posture declares");
        assert.deepEqual(gw.buildFrom.args, { GO_IMAGE: GOLANG_LOCAL_IMAGE, BASE_IMAGE, GOPROXY: "off" });
        const pre = posture(parseConfigOrThrow(prodWith({ gateway: { build: false, image: "citadel/caddy:t" } })));
        assert.equal(pre.hostSteps.find((s) => s.name === GATEWAY_IMAGE_STEP), undefined);
        assert.equal(pre.containers.find((x) => x.role === "gateway")?.buildFrom, undefined);
        // The hcloud lab stack converges this default (test/e2e/hcloud.test.ts).
        assert.ok(posture(loadStackConfig("hcloud")).hostSteps.some((s) => s.name === GATEWAY_IMAGE_STEP));
    });

    it("every input decides the hash: each context file, each build argument, the tag", () => {
        const c = config("citadel/caddy:t");
        const files = gatewayBuildContext();
        const base = gatewayBuildInputs(c, "citadel/caddy:t", files);
        assert.equal(gatewayBuildInputs(c, "citadel/caddy:t"), base, "read from images/caddy by default");
        const seen = new Set([base]);
        for (const f of files) seen.add(gatewayBuildInputs(c, "citadel/caddy:t", files.map((g) => (g === f ? { ...g, content: g.content + "\n" } : g))));
        seen.add(gatewayBuildInputs(config("citadel/caddy:t", { ...LAB_FROM, goProxy: "direct" }), "citadel/caddy:t"));
        seen.add(gatewayBuildInputs(config("citadel/caddy:t", { goImage: GOLANG_LOCAL_IMAGE }), "citadel/caddy:t"));
        seen.add(gatewayBuildInputs(c, "citadel/caddy:u"));
        assert.equal(seen.size, 1 + files.length + 3);
        // Every context file is embedded verbatim, and nothing else is sent (build.sh stays behind).
        const script = renderGatewayImageScript(c, "citadel/caddy:t").script;
        for (const f of files) assert.ok(script.includes(`cat >"$ctx/${f.name}" <<'CITADEL_EOF'\n${f.content}`), `${f.name} embedded`);
        assert.ok(!script.includes(`"$ctx/build.sh"`));
        // One SSH command carries it: Linux caps one argument at 128 KiB.
        assert.ok(Buffer.byteLength(script) < GATEWAY_IMAGE_SCRIPT_MAX_BYTES, `${Buffer.byteLength(script)} bytes`);
        assert.deepEqual(renderGatewayImageScript(c, "citadel/caddy:t").sources?.map((s) => s.name), files.map((f) => `images/caddy/${f.name}`));
        assert.equal(script.match(/^cat >"\$ctx\//gm)?.length, files.length);
    });

    it("bad buildFrom values name the key", () => {
        const bad = (buildFrom: Record<string, string>) => {
            try {
                parseConfigOrThrow(prodWith({ gateway: { buildFrom } }));
            } catch (e) {
                return String(e instanceof Error ? e.message : e);
            }
            assert.fail("accepted");
        };
        assert.match(bad({ goProxy: "http://proxy.internal" }), /citadel:gateway\.buildFrom\.goProxy.*not a module proxy/s);
        assert.match(bad({ goImage: "Golang:latest!" }), /citadel:gateway\.buildFrom\.goImage/);
        assert.match(bad({ goimage: "golang:1" } as Record<string, string>), /citadel:gateway\.buildFrom/);
        const cross = (gateway: Record<string, unknown>) => {
            try {
                parseConfigOrThrow(prodWith({ gateway }));
            } catch (e) {
                return String(e instanceof Error ? e.message : e);
            }
            assert.fail("accepted");
        };
        // A built image is tagged by name: a digest cannot be built, only run as it is.
        assert.match(cross({ image: `citadel/caddy:2@sha256:${"a".repeat(64)}` }), /citadel:gateway\.image.*has a digest.*gateway\.build: false/s);
        parseConfigOrThrow(prodWith({ gateway: { build: false, image: `citadel/caddy:2@sha256:${"a".repeat(64)}` } }));
        assert.match(cross({ build: false, buildFrom: { goProxy: "off" } }), /citadel:gateway\.buildFrom.*gateway\.build is false/s);
    });

    it("the container runs the image ID the step printed last, and an output without one is an error", () => {
        const id = `sha256:${"b".repeat(64)}`;
        assert.equal(builtImageId(`citadel: gateway-image: building x (inputs abc)\ncitadel: gateway-image: built x in 12s: ${id}\n`), id);
        assert.equal(builtImageId(`citadel: gateway-image: unchanged (x, built from these inputs: ${id})\n`), id);
        assert.throws(() => builtImageId("citadel: gateway-image: built x in 12s\n"), /printed no image ID/);
    });

    it("is shellcheck-clean", (t) => {
        const sc = requireTool(t, "shellcheck");
        if (!sc) return;
        const r = shellcheck(sc, renderGatewayImageScript(config("citadel/caddy:t"), "citadel/caddy:t").script, ["-e", "SC1001"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
    });
});

describe("gateway-image host step on a Docker engine", () => {
    it("builds Caddy with the rate limiter as uid 10001, skips an up-to-date image, keeps the old image when a build fails", { timeout: 30 * 60_000 }, async (t) => {
        if (!requireRoot(t, "a Docker engine")) return;
        const engine = await requireDocker(t);
        if (!engine) return;
        await buildLocalImages({ only: ["golang"] });
        const image = `citadel/caddy:render-test-${randomBytes(4).toString("hex")}`;
        const dir = tmpDir("citadel-gateway-image-");
        t.after(async () => {
            run("docker", ["image", "rm", "--force", image], { timeout: 60_000 });
            fs.rmSync(dir, { recursive: true, force: true });
            if (engine.started) await stopDockerd({ onlyIfIdle: true });
        });

        const good = config(image);
        const want = posture(good).containers.find((x) => x.role === "gateway")?.buildFrom?.inputsSha256;
        assert.ok(want);
        const step = renderGatewayImageScript(good, image);
        const first = runStep(step.script);
        assert.equal(first.code, 0, first.out);
        assert.match(first.out, new RegExp(`citadel: gateway-image: built ${image.replace(/[.:]/g, "\\$&")} in \\d+s: sha256:`));
        assert.equal(inspect(image, `{{index .Config.Labels "${GATEWAY_BUILD_LABEL}"}}`), want, "labelled with the posture's hash");
        const id = inspect(image, "{{.Id}}");
        assert.equal(builtImageId(first.out), id, "what the container will run is what was built");
        assert.equal(inspect(image, "{{.Config.User}}"), `${GATEWAY_UID}:${GATEWAY_UID}`);
        const mods = run("docker", ["run", "--rm", "--network", "none", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--entrypoint", "caddy", image, "list-modules"], { timeout: 60_000 });
        assert.equal(mods.code, 0, mods.stderr);
        assert.ok(mods.stdout.split("\n").includes("http.handlers.rate_limit"), "the built Caddy has the rate limiter");

        const again = runStep(step.script);
        assert.equal(again.code, 0, again.out);
        assert.match(again.out, /citadel: gateway-image: unchanged/);
        assert.doesNotMatch(again.out, /building/);
        assert.equal(inspect(image, "{{.Id}}"), id);
        assert.equal(builtImageId(again.out), id);

        // Fault: a toolchain image without Go. The build fails with its log, the step fails, and the
        // tag still names the image built before (the running gateway is never left without one).
        const broken = renderGatewayImageScript(config(image, { ...LAB_FROM, goImage: BASE_IMAGE }), image);
        const stopped = () => run("docker", ["ps", "--all", "--quiet", "--filter", "status=exited", "--filter", `ancestor=${BASE_IMAGE}`]).stdout.trim().split("\n").filter(Boolean).sort();
        const stoppedBefore = stopped();
        const failed = runStep(broken.script);
        assert.notEqual(failed.code, 0, failed.out);
        assert.match(failed.out, /citadel: gateway-image: docker build of .* failed or took over 1800s/);
        assert.match(failed.out, /go: (command )?not found/);
        assert.equal(inspect(image, "{{.Id}}"), id, "the previous image keeps the tag");
        // The failed build step's container is not left behind on the host (docker build --force-rm).
        assert.deepEqual(stopped(), stoppedBefore, "a stopped build container was left behind");
        // Undone: the good inputs again, and the step is back to unchanged.
        const back = runStep(step.script);
        assert.equal(back.code, 0, back.out);
        assert.match(back.out, /unchanged/);
    });
});
