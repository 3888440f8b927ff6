#!/usr/bin/env bash
# What the trials' sandboxes need on this machine (run by `make demo` and `make test`):
#
# - bubblewrap (Debian's bubblewrap), which the local runtime runs every trial in; installed when missing.
# - The cloud metadata address (169.254.169.254, where a cloud VM's credentials are served) unreachable
#   from trials: rejected for uid 65534, the user local trials run as when mlops runs as root, and for
#   the bridge mlops0 of the Docker trials' network. Other users and other containers are not touched.
#
# Whether each rule is in place is written to the state file ($SANDBOX_STATE, by default .sandbox-state at
# the top of the checkout), one line per runtime, for the tests to read:
#     local=blocked
#     docker=open: not root (the rules need root: sudo make sandbox)
# A block that cannot be made is said loudly on stderr. Not root: it goes on (trials then reach what the
# host reaches), so `make demo` works for anyone. Root without iptables: it fails, since it could block.
# Idempotent; quick when everything is already there.
set -euo pipefail

METADATA=169.254.169.254/32
TRIAL_UID=65534
TRIALS_BRIDGE=mlops0
STATE=${SANDBOX_STATE:-$(cd "${BASH_SOURCE[0]%/*}/.." && pwd)/.sandbox-state}

say() { echo "sandbox-setup: $*"; }
loud() {  # loud RUNTIME WHY: the address stays reachable from that runtime's trials
    echo "sandbox-setup: WARNING: ${METADATA%/32} (cloud credentials) stays REACHABLE from $1 trials: $2" >&2
}
record() {  # record LOCAL DOCKER: the state of each block, written whole or not at all
    printf 'local=%s\ndocker=%s\n' "$1" "$2" >"$STATE.tmp"
    mv -f "$STATE.tmp" "$STATE"
}

if ! command -v bwrap >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        say "bubblewrap is not installed: sudo apt-get install bubblewrap (or run mlops with --runtime local --unsandboxed)" >&2
        exit 1
    fi
    say "installing Debian's bubblewrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi

if [ "$(id -u)" != 0 ]; then
    why="not root (the rules need root: sudo make sandbox)"
    loud local "$why"
    loud Docker "$why"
    record "open: $why" "open: $why"
    exit 0
fi
if ! command -v iptables >/dev/null 2>&1; then
    why="iptables is missing (apt-get install iptables, then make sandbox)"
    loud local "$why"
    loud Docker "$why"
    record "open: $why" "open: $why"
    exit 1
fi

rule() {  # rule CHAIN ARGS...: insert the rule once; iptables's complaint on stdout when it refuses
    local chain=$1
    shift
    iptables -C "$chain" "$@" >/dev/null 2>&1 || iptables -I "$chain" "$@" 2>&1
}
local_state=blocked
docker_state=blocked
if ! refused=$(rule OUTPUT -d "$METADATA" -m owner --uid-owner "$TRIAL_UID" -j REJECT); then
    local_state="open: iptables refused the rule (${refused//$'\n'/ })"
    loud local "${local_state#open: }"
fi
iptables -N DOCKER-USER 2>/dev/null || true  # Docker makes it when it starts, and keeps what it holds
if ! refused=$(rule DOCKER-USER -i "$TRIALS_BRIDGE" -d "$METADATA" -j REJECT); then
    docker_state="open: iptables refused the rule (${refused//$'\n'/ })"
    loud Docker "${docker_state#open: }"
fi
record "$local_state" "$docker_state"
say "bubblewrap $(bwrap --version | cut -d' ' -f2); $METADATA: local trials ${local_state%%:*}, Docker trials ${docker_state%%:*}"
