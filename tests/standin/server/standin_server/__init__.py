"""Stand-in for SGLang 0.5.7's HTTP server, the only test double of the test bed.

It speaks SGLang's HTTP API (see /work/shared/reference/sglang_api.md) without a GPU
or a model: tokens are words of a fixed synthetic vocabulary, paced by a latency
model, so the real `sglang.bench_serving` client can measure it. Behaviour knobs
are environment variables (tests/standin/README.md).

Modules that the scheduler processes import (this one, `vocab`, `knobs`,
`worker`) must stay stdlib-only: those processes run without the venv.
"""

SGLANG_VERSION = "0.5.7"
