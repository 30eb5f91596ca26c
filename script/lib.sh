# Shared helpers for the scripts in script/. Source it; do not run it.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTRACTS="$ROOT/contracts"
FOUNDRY_BIN="$CONTRACTS/node_modules/.bin"
# Logs and state of services the scripts start live here (ignored by git).
STATE_DIR="${LILYPAD_STATE_DIR:-$ROOT/.lilypad}"

# npm projects installed by setup with `npm ci` (those without a package-lock.json are skipped).
NPM_PROJECTS=(contracts test/cid-reference)

# Debian packages the project needs, and nothing else.
APT_PACKAGES=(docker.io nats-server redis-server busybox-static fonts-dejavu-core)

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# docker_answers: true when a Docker engine answers on the default socket.
docker_answers() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }
