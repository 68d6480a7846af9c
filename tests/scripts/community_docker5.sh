#!/usr/bin/env bash
# The community.docker 5.x line, out of an ansible 13 wheel from PyPI, for `make compat`.
#   community_docker5.sh          prints the collection's directory (…/ansible_collections/community/docker)
# community.docker 5.x runs on our ansible-core 2.19; only the ansible 13 package needs Python 3.12,
# so the wheel is downloaded for 3.12 and never installed: the collection is copied out of it.
# The wheel is kept under the persistent cache, the extracted copy under .build.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VENV:-$top/.venv}
spec=${COMMUNITY_DOCKER5_ANSIBLE:-ansible==13.*}
cache=${SGLANG_FLEET_CACHE:-/var/cache/sglang-rocm-fleet}/wheels
mkdir -p "$cache" 2>/dev/null || cache=$top/.build/cache/wheels
dest=$top/.build/community-docker5
collection=$dest/ansible_collections/community/docker

latest_wheel() { find "$cache" -maxdepth 1 -name 'ansible-13.*-py3-none-any.whl' | sort -V | tail -1; }

if [ ! -s "$collection/MANIFEST.json" ]; then
  mkdir -p "$cache"
  wheel=$(latest_wheel)
  if [ -z "$wheel" ]; then
    "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --python-version 3.12 \
      --only-binary=:all: "$spec" -d "$cache" >&2
    wheel=$(latest_wheel)
  fi
  [ -n "$wheel" ] || { echo "no ansible 13 wheel in $cache after pip download" >&2; exit 1; }
  rm -rf "$dest"
  "$venv/bin/python" - "$wheel" "$dest" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1:]
prefix = "ansible_collections/community/docker/"
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(dest, [name for name in archive.namelist() if name.startswith(prefix)])
PY
fi
version=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$collection/MANIFEST.json")
case $version in
  5.*) ;;
  *) echo "$collection holds community.docker $version, not 5.x" >&2; exit 1 ;;
esac
echo "$collection"
