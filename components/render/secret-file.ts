// The root script that writes one secret file from stdin: the value never appears in the script,
// its argv or its environment. Pure (tested on its own in a private mount namespace).
import { SECRET_FILE_MODE, SECRETS_DIR, secretFilePath } from "../posture/facts";
import { shellQuote } from "./template";

export function secretFileScript(consumer: string, name: string, uid: number, reloadContainer?: string): string {
    const path = secretFilePath(consumer, name);
    const dir = `${SECRETS_DIR}/${consumer}`;
    // A reader that reads the file at start only (Alertmanager) gets SIGHUP when a running one must
    // see a changed value; a new file needs none (the container starts after this step).
    const reload = reloadContainer
        ? [
              `if [ "$changed" = 1 ] && [ "$(docker inspect --format '{{.State.Running}}' ${shellQuote(reloadContainer)} 2>/dev/null)" = true ]; then`,
              `    docker kill --signal HUP ${shellQuote(reloadContainer)} >/dev/null`,
              `    echo "citadel: ${reloadContainer} reloads its configuration (SIGHUP): the value changed"`,
              "fi",
          ]
        : [];
    return [
        "set -euo pipefail",
        "umask 077",
        `install -d -m 0700 -o root -g root ${shellQuote(SECRETS_DIR)} ${shellQuote(dir)}`,
        `tmp=$(mktemp ${shellQuote(dir + "/.tmp.XXXXXX")})`,
        // The value arrives on stdin and is written byte-exact.
        `cat > "$tmp"`,
        `chown ${uid}:0 "$tmp" && chmod ${SECRET_FILE_MODE} "$tmp"`,
        // A rotation rewrites an existing file in place: a container's bind mount of the file follows
        // its inode, so a rename would leave running readers on the old value until re-created. The
        // price is a write window of one small write(2) in which a reader may find the file empty
        // (readers retry an empty read). A new file is renamed into place (atomic).
        ...(reloadContainer ? ["changed=0"] : []),
        `if [ -f ${shellQuote(path)} ] && [ ! -L ${shellQuote(path)} ]; then`,
        `    chown ${uid}:0 ${shellQuote(path)} && chmod ${SECRET_FILE_MODE} ${shellQuote(path)}`,
        `    if ! cmp -s "$tmp" ${shellQuote(path)}; then cat "$tmp" > ${shellQuote(path)};${reloadContainer ? " changed=1;" : ""} fi`,
        `    rm -f "$tmp"`,
        "else",
        `    mv -f "$tmp" ${shellQuote(path)}`,
        "fi",
        `echo "citadel: secret file ${path} written (owner uid ${uid}, mode ${SECRET_FILE_MODE})"`,
        ...reload,
    ].join("\n");
}
