#!/usr/bin/env bash
# What the trials' sandboxes need on this machine (run by `make demo` and `make test`):
#
# - bubblewrap (Debian's bubblewrap), which the local runtime runs every trial in; installed when missing.
# - The cloud metadata address (169.254.169.254, where a cloud VM's credentials are served) unreachable
#   from trials: rejected for uid 65534, the user local trials run as when mlops runs as root, and for
#   the bridge mlops0 of the Docker trials' network. Other users and other containers are not touched.
#   Needs root and iptables; without them it says so and goes on (trials then reach what the host reaches).
# Idempotent; quick when everything is already there.
set -euo pipefail

METADATA=169.254.169.254/32
TRIAL_UID=65534
TRIALS_BRIDGE=mlops0

say() { echo "sandbox-setup: $*"; }

if ! command -v bwrap >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        say "bubblewrap is not installed: sudo apt-get install bubblewrap (or run mlops with --runtime local --unsandboxed)" >&2
        exit 1
    fi
    say "installing Debian's bubblewrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi

if [ "$(id -u)" != 0 ] || ! command -v iptables >/dev/null 2>&1; then
    say "not root or no iptables: the cloud metadata address stays reachable from trials with the network on"
    exit 0
fi
rule() {  # rule CHAIN ARGS...: insert the rule once
    local chain=$1
    shift
    iptables -C "$chain" "$@" 2>/dev/null || iptables -I "$chain" "$@"
}
if ! rule OUTPUT -d "$METADATA" -m owner --uid-owner "$TRIAL_UID" -j REJECT 2>/dev/null; then
    say "iptables refused the rule for local trials; the metadata address stays reachable from them" >&2
fi
iptables -N DOCKER-USER 2>/dev/null || true  # Docker makes it when it starts, and keeps what it holds
if ! rule DOCKER-USER -i "$TRIALS_BRIDGE" -d "$METADATA" -j REJECT 2>/dev/null; then
    say "iptables refused the rule for Docker trials; the metadata address stays reachable from them" >&2
fi
say "bubblewrap $(bwrap --version | cut -d' ' -f2); $METADATA rejected for local and Docker trials"
