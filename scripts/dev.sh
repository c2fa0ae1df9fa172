#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine: install whatever is missing (apt packages, the
# virtualenv and pip extras, Cassandra's jars and the Java connector, both built or fetched with Maven), then run the
# demo or the tests.
#
#   bash scripts/dev.sh demo [fleetsense demo options]
#   bash scripts/dev.sh test [pytest options]
#   bash scripts/dev.sh setup            # only install
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
MODE="${1:-}"
shift || true

say() { printf '\033[1m[fleetsense]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[fleetsense] error:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null; then sudo "$@";
  else die "need root to run: $* (install sudo or run as root)"; fi
}

# --- 1. system packages (only what is missing) -----------------------------------------------------
missing=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)  # Cassandra's jars and the connector build (two poms)
command -v curl >/dev/null || missing+=(curl)
command -v npm >/dev/null || missing+=(npm)  # the dashboard's packages (service/web/package-lock.json)
[ -x /usr/bin/chromium ] || missing+=(chromium)  # the dashboard's browser tests (tests/browser) drive it
command -v systemd-analyze >/dev/null || missing+=(systemd)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)  # the cluster's Flink HA (fleetsense cluster)
command -v docker-compose >/dev/null || missing+=(docker-compose)  # validates deploy/compose offline, no daemon
command -v ip >/dev/null || missing+=(iproute2)  # the cluster's hosts are network namespaces
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  rabbit_was_missing=0
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || rabbit_was_missing=1
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package starts a system-wide broker on machines run by systemd; the local stack runs its own node
  # on the same well-known ports, so a broker we just installed is stopped and disabled again.
  if [ "$rabbit_was_missing" -eq 1 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
  fi
fi

# --- 2. Python 3.11 virtualenv with every extra ----------------------------------------------
pick_python() {
  for candidate in "${FLEETSENSE_PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}
if [ ! -x "$VENV/bin/python" ]; then
  if ! pick_python >/dev/null; then
    # Debian 12 and Ubuntu 22.04 package Python 3.11 even where it is not the default python3.
    say "installing Python 3.11 from the distribution's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv >/dev/null \
      || die "no Python 3.11 package on this distribution; install Python 3.11 and set FLEETSENSE_PYTHON"
  fi
  PY="$(pick_python)" || die "fleetsense needs Python 3.11 (apache-flink 1.20 supports up to 3.11; tomllib needs 3.11); none found (set FLEETSENSE_PYTHON)"
  say "creating the virtualenv in .venv with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.fleetsense-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing fleetsense with its extras (edge, gateway, cloud, service, stack, dev) into .venv"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[edge,gateway,cloud,service,stack,dev]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"

# --- 3. Cassandra's jars (Maven Central) and the Java AMQP connector (Maven build) -----------------
fleetsense stack prepare

# --- 4. run ----------------------------------------------------------------------------------------
case "$MODE" in
  demo)  exec fleetsense demo "$@" ;;
  test)  # The connector's JUnit tests (mvn test, offline once ~/.m2 holds the artifacts), then Python's.
         python -m fleetsense.cloud.connector_build --test
         [ "$#" -gt 0 ] && exec python -m pytest "$@"
         # Two groups, one after the other, so the single-node test stack is down before the cluster of namespaces
         # comes up (2 cores): everything else, then the cluster's fault scenarios (tests/integration/cluster).
         python -m pytest -m "not cluster"
         if [ -d tests/integration/cluster ]; then exec python -m pytest -m cluster tests/integration/cluster; fi ;;
  setup) say "set up; activate with: source .venv/bin/activate" ;;
  *)     die "usage: bash scripts/dev.sh demo|test|setup [options]" ;;
esac
