#!/usr/bin/env bash
# One command from a fresh Debian machine to a running Hearth:
# npm packages from the lock file, host preparation (`hearth setup`:
# Debian packages, agent drive, images), then `hearth serve` on the
# embedded defaults (SQLite in /var/lib/hearth/data, best driver available).
# Extra arguments go to `hearth serve` (e.g. --listen 0.0.0.0:7070).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "hearth needs root (runc, bridges, nftables): run with sudo" >&2; exit 1; fi
[ -f node_modules/.package-lock.json ] || npm ci --no-audit --no-fund
node bin/hearth.mjs setup
exec node bin/hearth.mjs serve "$@"
