#!/usr/bin/env bash
# Run one quality gate and print how long it took, pass or fail.
#   gate.sh NAME COMMAND...
set -u
name=$1; shift
echo "== gate $name: start"
start=${EPOCHREALTIME/[.,]/}
"$@"; rc=$?
ms=$(( (${EPOCHREALTIME/[.,]/} - start) / 1000 ))
took="$((ms / 1000)).$(( (ms % 1000) / 100 ))s"
if [ "$rc" -eq 0 ]; then echo "== gate $name: passed in $took"; else echo "== gate $name: FAILED (exit $rc) after $took"; fi
exit "$rc"
