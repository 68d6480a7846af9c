#!/usr/bin/env bash
# Gate: `ansible-galaxy collection build` succeeds and the tarball carries no generated
# artefacts (virtualenvs, caches, bed state, results, bytecode).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$top"
ansible-galaxy collection build --force --output-path "$out" >/dev/null
tarball=$(ls "$out"/sglang_rocm-fleet-*.tar.gz)
bad=$(tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.build|\.simfleet|\.cache|\.pytest_cache|__pycache__|sglang-results|results|tests/output)(/|$)|\.pyc$' || true)
if [ -n "$bad" ]; then
  echo "collection tarball holds generated artefacts:" >&2
  echo "$bad" | head -20 >&2
  exit 1
fi
echo "built $(basename "$tarball"): $(tar -tzf "$tarball" | wc -l) entries, $(du -h "$tarball" | cut -f1), no generated artefacts"
