#!/usr/bin/env bash
# Stop the engine that start-engine.sh started, and remove the bridge it made
# (docker0): the host's network is then as it was before.
set -euo pipefail
state=${DOCKER_STATE:-/var/tmp/cookiecutter-python-server-docker}
if [ -e "$state/docker.pid" ]; then
  pid=$(cat "$state/docker.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
fi
if [ -e "$state/bridge-made" ] && ip link show docker0 >/dev/null 2>&1; then
  ip link delete docker0
fi
rm -f "$state/bridge-made"
