#!/usr/bin/env bash
# System packages the test suite needs: iproute2 (`ip`, for the network-namespace tests),
# procps (`pgrep`), and for the tests of `raftlog bench` wrk (the load generator) and
# etcd-server (the system it is compared with), and chromium for the dashboard's browser
# tests. Installs only what is missing, with one
# `apt-get update` first.
# Not root, or no apt-get: says so and carries on (those tests then skip with the reason).
set -euo pipefail

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
# Debian's chromium, driven by Playwright in the dashboard's browser tests.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing ${missing[*]} and cannot install them here (not root or no apt-get); the tests that need them will skip" >&2
    exit 0
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
