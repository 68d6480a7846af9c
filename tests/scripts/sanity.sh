#!/usr/bin/env bash
# ansible-test sanity needs the collection at ansible_collections/<ns>/<name>; copy the
# tracked (and not ignored) files into a temporary tree and run it there, docker-less.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VENV:-$top/.venv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/ansible_collections/sglang_rocm/fleet
mkdir -p "$dest"
cd "$top"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$dest/$(dirname "$f")"
  cp -p "$f" "$dest/$f"
done
cd "$dest"
# ansible-test bootstraps pip in its per-test venvs with a get-pip.py it downloads from a host
# we cannot reach; seed its cache with an equivalent script unless a real one is there.
pipver=$(grep -oP "pip='\K[0-9.]+" "$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -1)
shim=$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py
[ -s "$shim" ] || { mkdir -p "$(dirname "$shim")"; cp "$top/tests/sanity/get_pip_shim.py" "$shim"; }
# The bundled collections (community.docker, ansible.posix) come from the venv's ansible package.
bundled=$("$venv/bin/python" -c 'import ansible_collections, os; print(os.path.dirname(list(ansible_collections.__path__)[-1]))')
export ANSIBLE_COLLECTIONS_PATH="$tmp:$bundled"
# ansible-test resolves other collections only inside the tested collection's own root, so the
# import, validate-modules and ansible-doc tests see community.docker (whose API client
# _docker_engine.py uses) only when it sits next to ours. COMMUNITY_DOCKER_PATH puts another line
# there (`make compat`: 5.x); it comes first on the collections path, before the venv's 4.x.
mkdir -p "$tmp/ansible_collections/community"
cp -a "${COMMUNITY_DOCKER_PATH:-$bundled/ansible_collections/community/docker}" "$tmp/ansible_collections/community/docker"
# --python 3.11 --local: the controller's interpreter, no containers (none are reachable here).
# SANITY_ARGS is split into words on purpose (e.g. SANITY_ARGS="--test pylint --test pep8").
# shellcheck disable=SC2086
exec "$venv/bin/ansible-test" sanity --python 3.11 --local --color no ${SANITY_ARGS:-} "$@"
