#!/usr/bin/env bash
# Make a Docker engine answer on this machine, and make the base image the Dockerfiles start FROM.
#
# - No engine answering: install Debian's docker.io if dockerd is missing, start dockerd in the background
#   (log in /var/log/mlops-dockerd.log), wait until it answers. A running engine is left alone.
# - No base image (python:3.11-slim) and no registry to pull it from: build an equivalent locally with
#   debootstrap (Debian bookworm, python3 in a venv on the PATH, the machine's CA bundle trusted by pip)
#   and tag it python:3.11-slim, so the same Dockerfiles build here and anywhere else, unchanged.
#   The Debian mirror comes from apt's own sources on this machine.
# Idempotent; quick when everything is already there.
# Settings: MLOPS_BASE_IMAGE (default python:3.11-slim), MLOPS_BASE_PULL=0 (do not try a registry first),
# MLOPS_DEBIAN_MIRROR (when apt's sources name no Debian mirror).
set -euo pipefail

BASE_IMAGE="${MLOPS_BASE_IMAGE:-python:3.11-slim}"
LOG=/var/log/mlops-dockerd.log

say() { echo "docker-setup: $*"; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! engine_answers; then
    if [ -n "${DOCKER_HOST:-}" ]; then
        say "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine, or unset DOCKER_HOST" >&2
        exit 1
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        say "installing Debian's docker.io"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    fi
    say "starting dockerd (log: $LOG)"
    nohup dockerd >"$LOG" 2>&1 &
    for _ in $(seq 1 60); do
        engine_answers && break
        sleep 1
    done
    if ! engine_answers; then
        say "dockerd did not answer within 60 s; its log ends with:" >&2
        tail -n 20 "$LOG" >&2
        exit 1
    fi
fi
say "engine $(docker version --format '{{.Server.Version}}') answers"

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base image $BASE_IMAGE is present"
    exit 0
fi
if [ "${MLOPS_BASE_PULL:-1}" != 0 ] && timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    say "pulled $BASE_IMAGE"
    exit 0
fi

say "$BASE_IMAGE is not here and could not be pulled: building it locally with debootstrap (about two minutes)"
if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
# The Debian mirror apt itself uses here (one-line .list or deb822 .sources files; options such as
# [signed-by=...] skipped), unless MLOPS_DEBIAN_MIRROR names one.
mirror="${MLOPS_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true) \
        | grep -E '^(deb|URIs:)[[:space:]]' | grep -oE 'https?://[^[:space:]]+' \
        | grep -vE 'security|updates|backports' | grep -m 1 debian || true)
fi
if [ -z "$mirror" ]; then
    say "no Debian mirror in apt's sources; set MLOPS_DEBIAN_MIRROR to one to build the base image" >&2
    exit 1
fi
root=$(mktemp -d /var/tmp/mlops-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$root" "$mirror" \
    >/var/log/mlops-debootstrap.log 2>&1 || { say "debootstrap failed; see /var/log/mlops-debootstrap.log" >&2; exit 1; }
# This machine's network re-signs TLS: give the image the machine's CA bundle so pip inside builds works.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca_bundle" ]; then
    cp "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
fi
chroot "$root" python3 -m venv /opt/venv
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
    --change "ENV LANG=C.UTF-8" \
    --change 'CMD ["python3"]' \
    - "$BASE_IMAGE" >/dev/null
say "built $BASE_IMAGE locally ($(docker image inspect "$BASE_IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
