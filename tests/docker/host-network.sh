#!/usr/bin/env bash
# What a Docker engine may change in the host's network and keep changed while it
# runs: IP forwarding and the firewall's rules (filter and nat tables, no counters).
set -euo pipefail
echo "net.ipv4.ip_forward=$(sysctl -n net.ipv4.ip_forward)"
if command -v iptables >/dev/null; then
  iptables -S
  iptables -t nat -S
fi
