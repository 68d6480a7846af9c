#!/usr/bin/env bash
# `make demo`: a 3-host simulated AMD fleet, site.yml end to end, and the fleet report. The model
# comes from the bed's own model hub (its inventory's sglang_model_*): staged once, spread host to host.
# The bed is torn down afterwards unless DEMO_KEEP=1; the report stays in sglang-results/.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
venv=${VENV:-$top/.venv}
export PATH="$venv/bin:$PATH" PYTHONPATH="$top/tests${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_COLLECTIONS_PATH="$top/.build" ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-1}
results=${SGLANG_RESULTS_DIR:-$top/sglang-results}

engine_started=0
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  rc=$?
  if [ "${DEMO_KEEP:-0}" != 1 ]; then python -m simfleet down >/dev/null || rc=1; fi
  if [ "$engine_started" = 1 ] && [ "${DEMO_KEEP:-0}" != 1 ]; then tests/scripts/engine.sh stop >/dev/null || rc=1; fi
  exit "$rc"
}
trap cleanup EXIT
if ! tests/scripts/engine.sh status >/dev/null 2>&1; then tests/scripts/engine.sh start; engine_started=1; fi
image=$(python tests/standin/build.py --docker-host "$(tests/scripts/engine.sh host)" | tail -n 1)
python -m simfleet up --hosts 3 --profile mi300x-8gpu --image "$image"
inventory=$(python -m simfleet inventory --path)

run_id=demo-$(date -u +%Y%m%dT%H%M%SZ)
set +e
ansible-playbook -i "$inventory" -i tests/demo/inventory.yml playbooks/site.yml \
  -e "sglang_results_dir=$results" -e "sglang_run_id=$run_id"
playbook_rc=$?
set -e
report=$results/$run_id/fleet_report.json
if [ ! -f "$report" ]; then echo "demo: no fleet report was written (playbook exit $playbook_rc)" >&2; exit 1; fi
python - "$report" <<'PY'
import json, os, sys
report = json.load(open(sys.argv[1]))
verdict = report["verdict"]
print("\n== demo: fleet report %s" % sys.argv[1].replace(".json", ".html"))
print("== demo: verdict %s" % verdict["summary"])
for violation in report["violations"]:
    print("   - " + violation["message"])
# The cold start: what crossed the upstream link per artifact, and each host's startup phases.
MIB = 1024.0 * 1024.0
cold = report.get("cold_start") or {}
for artifact in ("image", "model"):
    summary = cold.get(artifact)
    if summary:
        copies = "" if summary["copies"] is None else " = %.2f x one copy" % summary["copies"]
        print("== demo: %s over the upstream link: %.1f MiB%s (%s)" % (
            artifact, summary["upstream_bytes"] / MIB, copies,
            "; ".join("%s: %s" % (how, " ".join(hosts)) for how, hosts in summary["hosts"].items())))
print("== demo: startup phases (s): " + ", ".join(report["startup"]["phases"]))
for host in report["hosts"]:
    phases = (host.get("startup") or {}).get("phases") or {}
    print("   %s: %s" % (host["host"], " ".join(
        "-" if not phases.get(name) else "%.1f" % phases[name]["seconds"] for name in report["startup"]["phases"])))
# make test runs the demo as a gate: the slow host, and only it, must be flagged in every tier.
expected = os.environ.get("DEMO_EXPECT_OUTLIER")
if expected:
    flagged = {(o["host"], o["tier"]) for o in report["outliers"]}
    tiers = {t for h in report["hosts"] for t in (h.get("tiers") or {})}
    wanted = {(expected, t) for t in tiers}
    if flagged != wanted or report["failures"]:
        sys.exit("demo: expected %s flagged as the outlier in every tier %s and no failures; got outliers %s, failures %s"
                 % (expected, sorted(tiers), sorted(flagged), report["failures"]))
    print("== demo: check passed: %s is the only outlier, in every tier" % expected)
    # the model crossed the upstream link at most once (a fresh bed: exactly once, to one host)
    model = cold.get("model") or {}
    if not model or len(model["from_upstream"]) > 1 or (model["copies"] or 0) > 1.0:
        sys.exit("demo: expected the model staged from the hub once, by one host; got %s" % model)
    print("== demo: check passed: the model crossed the upstream link %.2f times (%s)"
          % (model["copies"], ", ".join(model["from_upstream"]) or "no host needed it"))
PY
if [ "$playbook_rc" != 0 ]; then echo "demo: site.yml failed on some hosts (exit $playbook_rc); the report names them" >&2; fi
exit "$playbook_rc"
