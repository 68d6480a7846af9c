#!/usr/bin/env bash
# The test bed's own Docker engine on the controller: builds the stand-in image and pushes
# it to the bed's registry. It never touches a system dockerd: own socket, data root and
# pidfile; its data root lives in the persistent cache so built images survive between runs.
#   tests/scripts/engine.sh start|stop|status|host
set -euo pipefail

cache=${SGLANG_FLEET_CACHE:-/var/cache/sglang-rocm-fleet}
run=/run/sglang-fleet-engine
sock=$run/docker.sock
pidfile=$run/dockerd.pid
# The beds' subnets (tests/simfleet, SIMFLEET_INSTANCE 0..9 use 10.213.77-86.x): each bed's
# registry is plain HTTP on its bridge address.
bed_subnet=${SIMFLEET_SUBNET:-10.213.64.0/19}

alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
  host)
    echo "unix://$sock" ;;
  status)
    if alive; then echo "engine running, pid $(cat "$pidfile"), unix://$sock"; else echo "engine stopped"; exit 1; fi ;;
  start)
    if alive; then echo "engine already running (pid $(cat "$pidfile"))"; exit 0; fi
    command -v dockerd >/dev/null || { echo "dockerd missing: run 'make deps' (apt-get install docker.io)" >&2; exit 1; }
    mkdir -p "$run" "$cache/engine"
    rm -f "$sock" "$pidfile"
    dockerd --host "unix://$sock" --data-root "$cache/engine" --exec-root "$run/exec" \
      --pidfile "$pidfile" --bridge=none --iptables=false --ip6tables=false \
      --insecure-registry "$bed_subnet" >"$run/dockerd.log" 2>&1 &
    for _ in $(seq 1 300); do
      if DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
        echo "engine started, pid $(cat "$pidfile"), unix://$sock"; exit 0
      fi
      kill -0 $! 2>/dev/null || break
      sleep 0.1
    done
    echo "engine failed to start; last log lines:" >&2; tail -n 20 "$run/dockerd.log" >&2; exit 1 ;;
  stop)
    if alive; then
      pid=$(cat "$pidfile"); kill -TERM "$pid"
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
      echo "engine stopped"
    fi
    # dockerd leaves its default netns handle (and, after a crash, other mounts) under its
    # exec root; unmount everything below $run, deepest first, before removing it.
    awk -v run="$run/" 'index($2, run) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
      umount "$mnt" 2>/dev/null || umount -l "$mnt"
    done
    rm -rf "$run" ;;
  *)
    echo "usage: $0 start|stop|status|host" >&2; exit 2 ;;
esac
