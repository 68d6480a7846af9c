"""A stand-in scheduler (one per TP rank) or detokenizer process.

The server starts it with argv[0] set to SGLang's process title
(`sglang::scheduler_TP0`, `sglang::detokenizer`) and the interpreter's path as
executable, so `ps`, `pgrep -f` and /proc/<pid>/cmdline see the real names. That
also means it runs outside the venv: stdlib only.

A scheduler checks the GPU device nodes like a HIP process would, loads weights
(reads every byte of a local model directory's shards, weights.py; nothing for a hub id)
and waits STANDIN_LOAD_SECONDS more, reports ready on its pipe, then idles until SIGTERM.
On failure it logs `Scheduler hit an exception: <traceback>` and sends SIGQUIT
to the server, as SGLang's scheduler does. SIGUSR1 makes it fail while serving
(the crash-after-N-requests knob). Workers stay in the server's process group
and, unlike 0.5.7's (PR_SET_PDEATHSIG), outlive a killed server unless
STANDIN_WORKER_PDEATHSIG=1, so a stop that kills only the server pid shows.
"""

import argparse
import ctypes
import glob
import json
import logging
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from standin_server import weights  # noqa: E402  (needs the path above)
from standin_server.knobs import Knobs  # noqa: E402

PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15
HIP_INVALID_ORDINAL = (
    "HIP error: invalid device ordinal\n"
    "HIP kernel errors might be asynchronously reported at some other API call, "
    "so the stacktrace below might be incorrect.\n"
    "For debugging consider passing AMD_SERIALIZE_KERNEL=3\n"
    "Compile with `TORCH_USE_HIP_DSA` to enable device-side assertions.\n")
HIP_ILLEGAL_ACCESS = HIP_INVALID_ORDINAL.replace(
    "invalid device ordinal", "an illegal memory access was encountered")

logger = logging.getLogger("standin.worker")


class Crash(Exception):
    pass


def _prctl(option, value):
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def check_devices(knobs, gpu_id):
    """Fail like torch on ROCm when the container lacks the GPU device nodes."""
    if not os.path.exists(knobs.kfd_path):
        raise RuntimeError("No HIP GPUs are available")
    visible = len(glob.glob(os.path.join(knobs.dri_dir, "renderD*")))
    if gpu_id >= visible:
        raise RuntimeError(HIP_INVALID_ORDINAL)


def run_scheduler(opts, knobs):
    mem_gb = 191.45
    check_devices(knobs, opts.gpu_id)
    logger.info("Init torch distributed begin.")
    logger.info("Init torch distributed ends. mem usage=0.00 GB")
    logger.info("Load weight begin. avail mem=%.2f GB", mem_gb)
    if knobs.crash_at_start and opts.rank == 0:
        time.sleep(knobs.load_seconds / 2)
        raise RuntimeError("HIP out of memory. Tried to allocate 2.00 GiB "
                           "(STANDIN_CRASH_AT_START is set)")
    if os.path.isdir(opts.model_path):
        read, seconds = weights.load(opts.model_path, logger.info)
        logger.info("[standin] read %d bytes of weights from %s in %.2f s", read, opts.model_path, seconds)
    time.sleep(knobs.load_seconds)
    logger.info("Load weight end. type=%s, dtype=torch.bfloat16, avail mem=%.2f GB, mem usage=24.00 GB.",
                opts.architecture, mem_gb - 24)
    logger.info("KV Cache is allocated. #tokens: %s, K size: 60.00 GB, V size: 60.00 GB",
                opts.max_total_num_tokens)
    if opts.rank == 0:
        logger.info("Capture cuda graph begin. This can take up to several minutes. avail mem=%.2f GB",
                    mem_gb - 144)
        logger.info("Capture cuda graph end. Time elapsed: 0.01 s. mem usage=0.50 GB. avail mem=%.2f GB.",
                    mem_gb - 144.5)
        logger.info("max_total_num_tokens=%s, context_len=%s, available_gpu_mem=46.95 GB",
                    opts.max_total_num_tokens, opts.context_length)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["scheduler", "detokenizer"], required=True)
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--gpu-id", type=int, default=0)
    parser.add_argument("--log-prefix", default="")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--architecture", default="StandinForCausalLM")
    parser.add_argument("--max-total-num-tokens", type=int, default=0)
    parser.add_argument("--context-length", type=int, default=0)
    parser.add_argument("--model-path", default="")
    opts = parser.parse_args(argv)

    # Python replaced sys.argv[0] with the script path; the title is the original argv[0].
    with open("/proc/self/cmdline", "rb") as cmdline:
        _prctl(PR_SET_NAME, cmdline.read().split(b"\0")[0][:15])
    knobs = Knobs.from_env()
    if knobs.worker_pdeathsig:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != opts.server_pid:  # the server died before the line above
            return 0
    millis = ".%(msecs)03d" if os.environ.get("SGLANG_LOG_MS", "").lower() in ("1", "true") else ""
    logging.basicConfig(level=getattr(logging, opts.log_level.upper(), logging.INFO),
                        format=f"[%(asctime)s{millis}{opts.log_prefix}] %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr)

    def on_crash(signum, frame):
        raise Crash()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    signal.signal(signal.SIGUSR1, on_crash)
    try:
        if opts.role == "scheduler":
            run_scheduler(opts, knobs)
        with os.fdopen(opts.ready_fd, "w") as ready:
            ready.write(json.dumps({"status": "ready"}) + "\n")
        while True:
            try:
                signal.pause()
            except Crash:
                raise RuntimeError(HIP_ILLEGAL_ACCESS) from None
    except Exception:
        logger.error("Scheduler hit an exception: %s", traceback.format_exc())
        # Like SGLang: tell the server, which then tears the whole tree down.
        if os.getppid() == opts.server_pid:
            os.kill(opts.server_pid, signal.SIGQUIT)
        return 1


if __name__ == "__main__":
    sys.exit(main())
