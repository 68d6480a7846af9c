#!/usr/bin/env bash
# Gate: `ansible-galaxy collection build` succeeds and the tarball carries no generated
# artefacts (virtualenvs, caches, bed state, the demo's sglang-results/, bytecode).
# In a git checkout the rule is exact: every file in the tarball is a tracked file (or one of
# the two manifests the build writes). `make test` runs this gate after e2e, so it sees what
# `make demo` leaves in the checkout (the README's order: make demo, then make test).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$top"
ansible-galaxy collection build --force --output-path "$out" >/dev/null
tarball=$(ls "$out"/sglang_rocm-fleet-*.tar.gz)
tar -tzf "$tarball" | grep -v '/$' | sort >"$out/entries"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  { git ls-files; printf '%s\n' MANIFEST.json FILES.json; } | sort -u >"$out/tracked"
  bad=$(comm -23 "$out/entries" "$out/tracked")
else
  bad=$(grep -E '(^|/)(\.venv|\.build|\.simfleet|\.cache|\.pytest_cache|__pycache__|sglang-results|results|tests/output)(/|$)|\.pyc$' "$out/entries" || true)
fi
if [ -n "$bad" ]; then
  echo "collection tarball holds files git does not track (generated artefacts; add them to build_ignore in galaxy.yml):" >&2
  echo "$bad" | head -20 >&2
  exit 1
fi
echo "built $(basename "$tarball"): $(wc -l <"$out/entries") files, $(du -h "$tarball" | cut -f1), all tracked"
