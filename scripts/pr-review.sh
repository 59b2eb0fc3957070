#!/usr/bin/env bash
# The pull-request workflow's logic (.github/workflows/review.yml and review-comment.yml), in two
# halves that run in different jobs with different rights:
#
#   review   runs `citadel review` on the PR (its code, no secrets, read-only token) and writes
#            everything the comment needs into one directory, uploaded as an artifact:
#              comment.md  the Markdown comment, starting with the marker <!-- citadel-review -->
#              review.json the whole review (`--json`), when the review ran
#              exit-code   0 nothing weakens or all acknowledged, 1 unacknowledged weakening, 2 setup error
#              pr          the PR number (when --pr is given)
#            and exits with the review's exit code (so the check fails on exit 1 or 2).
#   comment  runs in the trusted workflow_run job (default branch code, pull-requests: write, no PR
#            code): reads that directory as data, checks that the PR it names really has the head
#            commit the workflow run was for, and creates or edits ONE comment per PR, found by the
#            marker and the bot's login, via the GitHub REST API at $GITHUB_API_URL (as `gh` and
#            Actions use it; default https://api.github.com) with $GITHUB_TOKEN (or $GH_TOKEN).
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
readonly MARKER='<!-- citadel-review -->'
readonly MAX_BODY=65000 # GitHub refuses comments over 65,536 characters

usage() {
    cat <<'EOF'
usage: scripts/pr-review.sh review --base <ref> --head <ref> --stack <name> --out <dir>
                                   [--accept-file <file>] [--pr <number>] [--repo <dir>]
       scripts/pr-review.sh comment --repo <owner/name> --dir <dir> --head-sha <sha> [--run-url <url>]

review   the stateless security review (citadel review --markdown --json) of a pull request into
         <dir>: comment.md (with the marker), review.json, exit-code, pr. Exit: the review's (0, 1, 2).
         A missing --accept-file acknowledges nothing (the file is optional in the repository).
comment  create or edit the one review comment on PR <dir>/pr of <owner/name> with <dir>/comment.md,
         only if that PR's head is <sha>. Needs GITHUB_TOKEN (or GH_TOKEN); API base: GITHUB_API_URL.
         CITADEL_COMMENT_AUTHOR: the login whose marked comment is edited (default github-actions[bot]).
EOF
}

fail() {
    printf 'citadel pr-review: %s\n' "$*" >&2
    exit 2
}
log() { printf '[pr-review] %s\n' "$*" >&2; }
need() { if [ $# -lt 2 ] || [ -z "$2" ]; then fail "$1 needs a value"; fi; }

# --- review --------------------------------------------------------------------------------------

cmd_review() {
    local base='' head='' stack='' out='' accept='' pr='' repo=.
    while [ $# -gt 0 ]; do
        case "$1" in
            --base) need "$@"; base=$2; shift 2 ;;
            --head) need "$@"; head=$2; shift 2 ;;
            --stack) need "$@"; stack=$2; shift 2 ;;
            --out) need "$@"; out=$2; shift 2 ;;
            --accept-file) need "$@"; accept=$2; shift 2 ;;
            --pr) need "$@"; pr=$2; shift 2 ;;
            --repo) need "$@"; repo=$2; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) fail "review: unknown argument $1" ;;
        esac
    done
    if [ -z "$base" ] || [ -z "$head" ] || [ -z "$stack" ] || [ -z "$out" ]; then fail "review needs --base, --head, --stack and --out"; fi
    [ -z "$pr" ] || [[ "$pr" =~ ^[1-9][0-9]{0,9}$ ]] || fail "--pr must be a pull-request number"
    mkdir -p "$out"
    rm -f "$out/comment.md" "$out/review.json" "$out/review.md" "$out/exit-code" "$out/pr" "$out/stderr.txt"

    local args=(--base "$base" --head "$head" --stack "$stack" --repo "$repo" --markdown "$out/review.md" --json)
    if [ -n "$accept" ]; then
        if [ -f "$accept" ]; then
            args+=(--accept-file "$accept")
        else
            log "no accept file $accept: nothing is acknowledged"
        fi
    fi
    local code=0
    "$root/node_modules/.bin/tsx" "$root/review/cli.ts" "${args[@]}" >"$out/review.json" 2>"$out/stderr.txt" || code=$?
    cat "$out/stderr.txt" >&2

    {
        printf '%s\n' "$MARKER"
        if { [ "$code" = 0 ] || [ "$code" = 1 ]; } && [ -s "$out/review.md" ]; then
            cat "$out/review.md"
        else
            # A setup error (unknown ref, invalid stack config): say so in the comment instead of
            # leaving an old review standing. The error text is the PR's; it goes in a code block.
            printf '### Citadel security review — stack %s\n\n' "\`$stack\`"
            printf '**The review could not run** (exit %s): the check fails until this is fixed.\n\n' "$code"
            printf '```\n'
            tail -n 40 "$out/stderr.txt" | sed 's/```/ʼʼʼ/g' | cut -c 1-300
            printf '```\n'
        fi
    } >"$out/comment.md"
    [ "$code" = 0 ] || [ "$code" = 1 ] || rm -f "$out/review.json"
    rm -f "$out/review.md" "$out/stderr.txt"
    printf '%s\n' "$code" >"$out/exit-code"
    [ -z "$pr" ] || printf '%s\n' "$pr" >"$out/pr"
    # Also on the run's summary page (readable even where no comment can be posted).
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$out/comment.md" >>"$GITHUB_STEP_SUMMARY"; fi
    log "review of $base → $head (stack $stack): exit $code; comment in $out/comment.md"
    return "$code"
}

# --- comment -------------------------------------------------------------------------------------

api_base='' token='' scratch=''

# api METHOD PATH [JSON-FILE]: the response body on stdout; an HTTP error fails with its status.
# The token reaches curl through a config file descriptor, never its command line.
api() {
    local method=$1 rel=$2 data=${3:-} status
    local args=(-sS -X "$method" -o "$scratch/response" -w '%{http_code}' --connect-timeout 10 --max-time 60
        -H 'Accept: application/vnd.github+json' -H 'X-GitHub-Api-Version: 2022-11-28' -H 'User-Agent: citadel-pr-review')
    if [ -n "$data" ]; then
        args+=(-H 'Content-Type: application/json' --data-binary "@$data")
    else
        args+=(--retry 3) # only reads are retried: a retried POST could comment twice
    fi
    status=$(curl "${args[@]}" -K <(printf 'header = "Authorization: Bearer %s"\n' "$token") "$api_base$rel") ||
        fail "$method $rel: request failed"
    case "$status" in
        2??) cat "$scratch/response" ;;
        *) fail "$method $rel: HTTP $status: $(head -c 300 "$scratch/response")" ;;
    esac
}

cmd_comment() {
    local repo='' dir='' head_sha='' run_url=''
    while [ $# -gt 0 ]; do
        case "$1" in
            --repo) need "$@"; repo=$2; shift 2 ;;
            --dir) need "$@"; dir=$2; shift 2 ;;
            --head-sha) need "$@"; head_sha=$2; shift 2 ;;
            --run-url) need "$@"; run_url=$2; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) fail "comment: unknown argument $1" ;;
        esac
    done
    if [ -z "$repo" ] || [ -z "$dir" ] || [ -z "$head_sha" ]; then fail "comment needs --repo, --dir and --head-sha"; fi
    [[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || fail "--repo must be owner/name"
    [[ "$head_sha" =~ ^([0-9a-f]{40}|[0-9a-f]{64})$ ]] || fail "--head-sha must be a full commit SHA"
    [ -z "$run_url" ] || [[ "$run_url" =~ ^https?://[A-Za-z0-9./:_-]+$ ]] || fail "--run-url is not a URL"
    # The directory is the artifact of a run of the PR's code: data to check, never to execute.
    # No symlinks: a crafted artifact could point comment.md at a file of this job (its environment
    # holds the write token) and have it posted.
    local f
    for f in comment.md pr; do
        if [ -L "$dir/$f" ] || [ ! -f "$dir/$f" ]; then fail "$dir/$f: not a regular file (no review to post)"; fi
    done
    local pr
    pr=$(head -c 20 "$dir/pr" 2>/dev/null | tr -d '\n') || true
    [[ "$pr" =~ ^[1-9][0-9]{0,9}$ ]] || fail "$dir/pr: not a pull-request number"
    command -v curl >/dev/null || fail "curl is needed"
    command -v jq >/dev/null || fail "jq is needed"
    token=${GITHUB_TOKEN:-${GH_TOKEN:-}}
    [ -n "$token" ] || fail "no GITHUB_TOKEN (or GH_TOKEN) in the environment"
    [[ "$token" =~ ^[A-Za-z0-9_.-]+$ ]] || fail "GITHUB_TOKEN has unexpected characters"
    api_base=${GITHUB_API_URL:-https://api.github.com}
    api_base=${api_base%/}
    local author=${CITADEL_COMMENT_AUTHOR:-github-actions[bot]}
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT

    # The PR number came from the artifact: only trust it if that PR's head is the commit the
    # (trusted) workflow_run event names. A newer push also lands here: its own run will comment.
    local actual
    actual=$(api GET "/repos/$repo/pulls/$pr" | jq -r '.head.sha // empty')
    if [ "$actual" != "$head_sha" ]; then
        log "PR #$pr of $repo has head ${actual:-?}, not $head_sha (a newer push, or not this PR): no comment"
        printf '::notice title=citadel review::no comment: PR #%s head is not %s\n' "$pr" "$head_sha"
        return 0
    fi

    # The body: our marker first (whatever the artifact starts with), the review, a footer; capped.
    {
        printf '%s\n' "$MARKER"
        grep -vxF "$MARKER" "$dir/comment.md" || true
        if [ -n "$run_url" ]; then printf '\n<sub>for %s · [workflow run](%s)</sub>\n' "${head_sha:0:12}" "$run_url"; fi
    } | jq -Rs --argjson max "$MAX_BODY" \
        '{ body: (if length > $max then .[0:($max - 100)] + "\n\n… (cut at the comment size limit: the run artifact has all of it)" else . end) }' \
        >"$scratch/body.json"

    # Our comment: the first one by the bot that starts with the marker (a user quoting the marker
    # is never edited). Pages of 100, oldest first.
    local page=1 id='' batch
    while [ -z "$id" ] && [ "$page" -le 50 ]; do
        batch=$(api GET "/repos/$repo/issues/$pr/comments?per_page=100&page=$page")
        id=$(jq -r --arg m "$MARKER" --arg a "$author" \
            '[.[] | select(.user.login == $a and (.body // "" | startswith($m)))][0].id // empty' <<<"$batch")
        [ "$(jq 'length' <<<"$batch")" -eq 100 ] || break
        page=$((page + 1))
    done

    local url
    if [ -n "$id" ]; then
        [[ "$id" =~ ^[0-9]+$ ]] || fail "unexpected comment id $id"
        url=$(api PATCH "/repos/$repo/issues/comments/$id" "$scratch/body.json" | jq -r '.html_url // empty')
        log "edited the review comment on PR #$pr: $url"
    else
        url=$(api POST "/repos/$repo/issues/$pr/comments" "$scratch/body.json" | jq -r '.html_url // empty')
        log "created the review comment on PR #$pr: $url"
    fi
}

case "${1:-}" in
    review) shift; cmd_review "$@" ;;
    comment) shift; cmd_comment "$@" ;;
    -h | --help | help) usage ;;
    *)
        [ -z "${1:-}" ] || printf 'citadel pr-review: unknown command %s\n' "$1" >&2
        usage >&2
        exit 2
        ;;
esac
