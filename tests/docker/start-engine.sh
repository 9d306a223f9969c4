#!/usr/bin/env bash
# A Docker engine and the python:3.11-slim base image, for the container tests on a
# machine that has neither a running engine nor a registry (Debian, as root, with
# the docker.io and debootstrap packages). A machine with a working Docker needs
# none of this. Prints the variables the tests read:
#
#   eval "$(tests/docker/start-engine.sh)"
#
# The engine keeps running for later runs; tests/docker/stop-engine.sh stops it.
#
# It leaves the host's network as it found it: no iptables rule, no change to IP
# forwarding (tests/test_containers.py compares both with what this script saw
# before it started the engine). Containers reach each other and the ports they
# publish on 127.0.0.1, but not beyond the host: builds, which fetch packages,
# run on the host's network instead (TEMPLATE_DOCKER_BUILD_NETWORK).
set -euo pipefail

state=${DOCKER_STATE:-/var/tmp/cookiecutter-python-server-docker}
base=python:3.11-slim
# Bumped when the stand-in changes, so that an older one is built again.
stand_in=debian-bookworm-2

if ! docker info >/dev/null 2>&1; then  # no engine answers where the environment points
  export DOCKER_HOST=unix://$state/docker.sock
  mkdir -p "$state"
  if ! docker info >/dev/null 2>&1; then
    # What the host's network looks like without the engine.
    "$(dirname "$0")/host-network.sh" >"$state/host-network"
    rm -f "$state/bridge-made"
    ip link show docker0 >/dev/null 2>&1 || touch "$state/bridge-made"
    dockerd --data-root "$state/data" --exec-root "$state/exec" \
      --pidfile "$state/docker.pid" -H "$DOCKER_HOST" --storage-driver overlay2 \
      --iptables=false --ip6tables=false --ip-forward=false \
      >"$state/dockerd.log" 2>&1 &
    for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null || { cat "$state/dockerd.log" >&2; exit 1; }
  fi
fi

label=$(docker image inspect --format '{{ index .Config.Labels "stand-in" }}' "$base" 2>/dev/null || true)
if [ -n "$label" ] && [ "$label" != "$stand_in" ]; then
  docker image rm --force "$base" >/dev/null  # an older stand-in: build it again
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
  # Certificate authorities this machine adds (a proxy's, say) reach pip inside
  # too, and uv, told to read the system's store (SSL_CERT_FILE) as it is here.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  tar -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL stand-in=$stand_in" --change 'CMD ["python3"]' - "$base" >/dev/null
  rm -rf "$rootfs"
fi

if [ -n "${DOCKER_HOST:-}" ]; then
  echo "export DOCKER_HOST=$DOCKER_HOST"
fi
if [ -e "$state/host-network" ] && [ "$(docker info --format '{{ .DockerRootDir }}')" = "$state/data" ]; then
  echo "export TEMPLATE_DOCKER_BUILD_NETWORK=host TEMPLATE_DOCKER_HOST_NETWORK=$state/host-network"
fi
# The stand-in has Python 3.11 only: projects built on it must ask for 3.11.
if [ -n "$(docker image inspect --format '{{ index .Config.Labels "stand-in" }}' "$base")" ]; then
  echo "export TEMPLATE_DOCKER_PYTHON=3.11"
fi
