#!/usr/bin/env bash
# A Docker engine and the python:3.11-slim base image, for the container tests on a
# machine that has neither a running engine nor a registry (Debian, as root, with
# the docker.io and debootstrap packages). A machine with a working Docker needs
# none of this. Prints the variables the tests read:
#
#   eval "$(tests/docker/start-engine.sh)"
#
# The engine keeps running for later runs; stop it with kill "$(cat STATE/docker.pid)".
set -euo pipefail

state=${DOCKER_STATE:-/var/tmp/cookiecutter-python-server-docker}
base=python:3.11-slim

if ! docker info >/dev/null 2>&1; then  # no engine answers where the environment points
  export DOCKER_HOST=unix://$state/docker.sock
  mkdir -p "$state"
  if ! docker info >/dev/null 2>&1; then
    # Docker's default networking (its own iptables rules, IP forwarding on), so
    # that build steps reach the package index as the host does.
    dockerd --data-root "$state/data" --exec-root "$state/exec" \
      --pidfile "$state/docker.pid" -H "$DOCKER_HOST" --storage-driver overlay2 \
      >"$state/dockerd.log" 2>&1 &
    for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null || { cat "$state/dockerd.log" >&2; exit 1; }
  fi
fi

if ! docker image inspect "$base" >/dev/null 2>&1 \
  && ! docker pull --quiet "$base" >/dev/null 2>&1; then
  # No registry: a stand-in with the same name, Debian 12's Python 3.11 made to
  # look like the official image (python on PATH, pip allowed to install).
  mkdir -p "$state"
  rootfs=$state/rootfs
  rm -rf "$rootfs"
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$state/debootstrap.log" 2>&1 \
    || { tail -n 20 "$state/debootstrap.log" >&2; exit 1; }
  ln -sf python3 "$rootfs/usr/bin/python"
  rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
  # Certificate authorities this machine adds (a proxy's, say) reach pip inside too.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  tar -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL stand-in=debian-bookworm' --change 'CMD ["python3"]' - "$base" >/dev/null
  rm -rf "$rootfs"
fi

if [ -n "${DOCKER_HOST:-}" ]; then
  echo "export DOCKER_HOST=$DOCKER_HOST"
fi
# The stand-in has Python 3.11 only: projects built on it must ask for 3.11.
if [ -n "$(docker image inspect --format '{{ index .Config.Labels "stand-in" }}' "$base")" ]; then
  echo "export TEMPLATE_DOCKER_PYTHON=3.11"
fi
