"""Behaviour knobs: environment variables read once at start-up.

Documented in tests/standin/README.md; keep the two in step. Defaults keep the
phases observable (port closed, then 503, then 200) and benchmarks fast.
"""

import dataclasses
import os

PREFIX = "STANDIN_"


class KnobError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Knobs:
    load_seconds: float = 2.0  # schedulers "load weights": port closed
    warmup_seconds: float = 1.0  # port open, /health answers 503
    ttft_ms: float = 20.0  # time to first token of a lone request ...
    prefill_ms_per_ktok: float = 5.0  # ... plus this much per 1000 prompt tokens
    tpot_ms: float = 2.0  # time per output token of a lone request
    slowdown_per_request: float = 0.02  # latency x (1 + this x (running requests - 1))
    health_probe_ms: float = 0.0  # duration of /health's generation probe (real: >= 1000)
    crash_at_start: bool = False  # scheduler TP0 raises while loading
    crash_after_requests: int = 0  # request N+1 makes scheduler TP0 crash (0: never)
    stall_after_requests: int = 0  # request N+1 onwards never progress (0: never)
    warmup_fail: bool = False  # the warm-up request fails: server kills itself
    error_rate: float = 0.0  # fraction of generation requests answered with an error
    error_mode: str = "http"  # http: HTTP 500; stream: 200 + SGLang's in-stream error
    seed: int = 0  # seeds error injection (output text is seeded by --random-seed)
    kfd_path: str = "/dev/kfd"
    dri_dir: str = "/dev/dri"
    worker_pdeathsig: bool = False  # schedulers die with the server, as real 0.5.7 ones do
    drain_poll_seconds: float = 0.5  # SIGTERM drain loop period (real: 5 s)

    @classmethod
    def from_env(cls, environ=None):
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            name = PREFIX + field.name.upper()
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            values[field.name] = _convert(name, raw, field.type)
        knobs = cls(**values)
        knobs._validate()
        return knobs

    def _validate(self):
        if not 0.0 <= self.error_rate <= 1.0:
            raise KnobError(f"STANDIN_ERROR_RATE={self.error_rate}: expected a fraction in [0, 1]")
        if self.error_mode not in ("http", "stream"):
            raise KnobError(f"STANDIN_ERROR_MODE={self.error_mode!r}: expected 'http' or 'stream'")
        for name in ("load_seconds", "warmup_seconds", "ttft_ms", "prefill_ms_per_ktok", "tpot_ms",
                     "slowdown_per_request", "health_probe_ms", "crash_after_requests",
                     "stall_after_requests", "drain_poll_seconds"):
            if getattr(self, name) < 0:
                raise KnobError(f"{PREFIX}{name.upper()}={getattr(self, name)}: must not be negative")


def _convert(name, raw, kind):
    kind = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return raw
    except ValueError:
        raise KnobError(f"{name}={raw!r}: expected a {kind}") from None
