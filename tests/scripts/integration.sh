#!/usr/bin/env bash
# Integration gate: build (or reuse) the stand-in image, bring up ONE simulated fleet, run
# every molecule scenario and the image tests against it, and always tear everything down.
#   integration.sh [SCENARIO...]     (default: every molecule/*/molecule.yml)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
venv=${VENV:-$top/.venv}
export PATH="$venv/bin:$PATH"
export PYTHONPATH="$top/tests${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_COLLECTIONS_PATH="$top/.build"
hosts=${SIMFLEET_HOSTS:-4}
profiles=${SIMFLEET_PROFILES:-mi300x-8gpu,numa-balancing-on,mi250-gfx90a,no-amdgpu}
# The hub's model: four shards of 12 MiB, so that molecule/benchmark's cut after 11 MiB leaves
# one whole 10 MiB block of huggingface_hub's on disk to resume from.
hub_size=${SIMFLEET_HUB_SIZE:-48MiB}

engine_started=0
bed_up=0
cleanup() {
  rc=$?
  if [ "$bed_up" = 1 ]; then python -m simfleet down || rc=1; fi
  if [ "$engine_started" = 1 ]; then tests/scripts/engine.sh stop || rc=1; fi
  leftover=$(ip netns list 2>/dev/null | grep -c "^sf${SIMFLEET_INSTANCE:-}-" || true)
  if [ "$leftover" != 0 ]; then echo "integration: $leftover simulated hosts left behind" >&2; rc=1; fi
  exit "$rc"
}
trap cleanup EXIT

if ! tests/scripts/engine.sh status >/dev/null 2>&1; then
  tests/scripts/engine.sh start
  engine_started=1
fi
export DOCKER_HOST
DOCKER_HOST=$(tests/scripts/engine.sh host)

image=$(python tests/standin/build.py --docker-host "$DOCKER_HOST" | tail -n 1)
export STANDIN_IMAGE=$image
echo "integration: stand-in image $image"

bed_up=1
python -m simfleet up --hosts "$hosts" --profiles "$profiles" --image "$image" --hub-size "$hub_size"
SIMFLEET_INVENTORY=$(python -m simfleet inventory --path)
export SIMFLEET_INVENTORY

pytest -q tests/integration

if [ "$#" -gt 0 ]; then scenarios=("$@"); else
  mapfile -t scenarios < <(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)
fi
failed=()
for s in "${scenarios[@]}"; do
  # molecule keeps per-scenario state (e.g. "prepared") in ~/.cache/molecule between runs;
  # the bed is new, so every scenario starts from nothing.
  molecule reset -s "$s" >/dev/null 2>&1 || true
  tests/scripts/gate.sh "molecule/$s" molecule test -s "$s" || failed+=("$s")
done

# community.docker 5.x (the ansible 13 wheel's, tests/scripts/community_docker5.sh): the
# container scenario, whose roles use community.docker's modules and our Engine API seam most,
# runs again with that line first on the collections path. The rest stays on the venv's 4.x.
for s in ${SGLANG_COMPAT_SCENARIOS-container}; do
  [[ " ${scenarios[*]} " == *" $s "* ]] || continue
  cd5=$(tests/scripts/community_docker5.sh)
  compat_path="${cd5%/ansible_collections/community/docker}:$ANSIBLE_COLLECTIONS_PATH"
  # What the playbook will load: Ansible's own collection loader on that path (ansible-galaxy's
  # listing is not in search order: it printed the venv's 4.x first from a worktree).
  seen=$(ANSIBLE_COLLECTIONS_PATH=$compat_path python - <<'PY'
import json, os
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
import ansible_collections.community.docker as loaded
with open(os.path.join(loaded.__path__[0], "MANIFEST.json")) as manifest:
    print(json.load(manifest)["collection_info"]["version"])
PY
)
  echo "integration: molecule/$s again with community.docker $seen"
  case $seen in 5.*) ;; *) echo "integration: expected community.docker 5.x first on $compat_path, got $seen" >&2; failed+=("$s@community.docker-5"); continue ;; esac
  molecule reset -s "$s" >/dev/null 2>&1 || true
  ANSIBLE_COLLECTIONS_PATH=$compat_path tests/scripts/gate.sh "molecule/$s@community.docker-$seen" molecule test -s "$s" \
    || failed+=("$s@community.docker-5")
done
if [ "${#failed[@]}" -gt 0 ]; then echo "integration: failed scenarios: ${failed[*]}" >&2; exit 1; fi
