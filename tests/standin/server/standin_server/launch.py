"""Process life cycle of the stand-in, phase by phase as in SGLang 0.5.7.

A. schedulers start and load weights (a local model directory's shards are read in full,
   weights.py): the port is not bound yet;
B. the HTTP server is up and warming up: /health answers 503;
C. ready: `The server is fired up and ready to roll!`, /health answers 200;
D. SIGTERM: /health answers 503 while requests drain, then the whole tree dies.

Failures end the way SGLang's do: a scheduler logs its traceback and sends
SIGQUIT, and the server SIGKILLs its children and then itself.
"""

import asyncio
import importlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time

from . import args as args_mod
from . import weights
from .knobs import KnobError, Knobs

logger = logging.getLogger("standin")
WARMUP_ERROR = ("Traceback (most recent call last):\n"
                "  File \"sglang/srt/entrypoints/http_server.py\", line 1489, in _execute_server_warmup\n"
                "    res = requests.post(url + request_name, json=json_data, headers=headers, "
                "timeout=warmup_timeout)\n"
                "requests.exceptions.ReadTimeout: (STANDIN_WARMUP_FAIL is set)")
WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")


def marker(event):
    """A timestamp line for tests and the bed: `[standin] <event>_at_ms=<epoch ms>`."""
    sys.stderr.write(f"[standin] {event}_at_ms={int(time.time() * 1000)}\n")
    sys.stderr.flush()


def configure_logging(server_args):
    millis = ".%(msecs)03d" if args_mod.env_flag("SGLANG_LOG_MS", "false") else ""
    logging.basicConfig(level=getattr(logging, server_args["log_level"].upper(), logging.INFO),
                        format=f"[%(asctime)s{millis}] %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        stream=sys.stderr, force=True)
    logging.getLogger("standin.http").setLevel(
        getattr(logging, server_args["log_level_http"].upper(), logging.INFO))
    logging.getLogger("aiohttp.access").disabled = True


class Launcher:
    def __init__(self, server_args, knobs, model_config):
        self.args = server_args
        self.knobs = knobs
        self.model = model_config
        self.schedulers = []
        self.detokenizer = None
        self.engine = None
        self.stopping = None

    @property
    def children(self):
        return [p for p in self.schedulers + [self.detokenizer] if p is not None]

    # -- child processes ------------------------------------------------------------

    def _spawn(self, title, role, rank=0, gpu_id=0, prefix=""):
        read_fd, write_fd = os.pipe()
        cmd = [title, WORKER_SCRIPT, "--role", role, "--rank", str(rank), "--gpu-id", str(gpu_id),
               "--log-prefix", prefix, "--log-level", self.args["log_level"],
               "--ready-fd", str(write_fd), "--server-pid", str(os.getpid()),
               "--architecture", self.model["architectures"][0],
               "--max-total-num-tokens", str(self.model["max_total_num_tokens"]),
               "--context-length", str(self.model["context_length"]),
               "--model-path", self.args["model_path"]]
        # argv[0] is the process title; the interpreter is named by `executable`.
        proc = subprocess.Popen(cmd, executable=sys.executable, pass_fds=(write_fd,),
                                stdin=subprocess.DEVNULL)
        os.close(write_fd)
        proc.ready_pipe = os.fdopen(read_fd, "r")
        return proc

    def start_workers(self):
        tp = self.args["tp_size"]
        for rank in range(tp):
            suffix = f"_TP{rank}" if tp > 1 else ""
            gpu_id = self.args["base_gpu_id"] + rank * self.args["gpu_id_step"]
            self.schedulers.append(self._spawn(f"sglang::scheduler{suffix}", "scheduler", rank, gpu_id,
                                               f" TP{rank}" if tp > 1 else ""))
        self.detokenizer = self._spawn("sglang::detokenizer", "detokenizer")

    def wait_for_schedulers(self):
        """Block until every scheduler reports ready; raise like SGLang if one dies."""
        selector = selectors.DefaultSelector()
        for rank, proc in enumerate(self.children):
            selector.register(proc.ready_pipe, selectors.EVENT_READ, rank)
        pending = len(self.children)
        while pending:
            for key, _events in selector.select():
                rank, line = key.data, key.fileobj.readline()
                selector.unregister(key.fileobj)
                key.fileobj.close()
                pending -= 1
                if not line:
                    proc = self.children[rank]
                    logger.error("Rank %s scheduler is dead. Please check if there are relevant logs.", rank)
                    proc.wait()
                    logger.error("Exit code: %s", proc.returncode)
                    raise EOFError()
                if json.loads(line).get("status") != "ready":
                    raise RuntimeError("Initialization failed. Please see the error messages above.")

    def workers_alive(self):
        return all(proc.poll() is None for proc in self.children)

    def kill_children(self):
        for proc in self.children:
            if proc.poll() is None:
                proc.kill()
        for proc in self.children:
            proc.wait()

    def kill_process_tree(self):
        """SGLang's kill_process_tree(own pid): SIGKILL children, then itself.

        As PID 1 of a container the SIGKILL to itself is ignored and the process
        exits 0, exactly as the real server does.
        """
        self.kill_children()
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(0)

    # -- signals -------------------------------------------------------------------

    def _launch_phase_sigquit(self, signum, frame):
        logger.error("Received sigquit from a child process. It usually means the child failed.")
        self.kill_process_tree()

    def _running_phase_sigquit(self):
        logger.error("SIGQUIT received. signum=%r, frame=None. It usually means one child failed.",
                     signal.SIGQUIT)
        self.kill_process_tree()

    def crash_scheduler(self):
        """STANDIN_CRASH_AFTER_REQUESTS: scheduler TP0 hits an exception while serving."""
        logger.warning("[standin] STANDIN_CRASH_AFTER_REQUESTS reached: crashing scheduler 0")
        if self.schedulers and self.schedulers[0].poll() is None:
            self.schedulers[0].send_signal(signal.SIGUSR1)  # it will SIGQUIT us back
        else:
            self._running_phase_sigquit()

    def _on_sigterm(self):
        logger.warning("SIGTERM received. signum=%r frame=None. Draining requests and shutting down...",
                       signal.SIGTERM)
        self.engine.gracefully_exit = True
        self.stopping.set()

    # -- serving -------------------------------------------------------------------

    async def serve(self):
        from aiohttp import web  # imported late: --help and argument errors stay fast

        from . import api
        from .engine import Engine

        self.stopping = asyncio.Event()
        self.engine = Engine(self.args, self.knobs, self.model,
                             workers_alive=self.workers_alive, on_crash=self.crash_scheduler)
        self.engine.load_seconds = time.time() - self.engine.started_at
        runner = web.AppRunner(api.make_app(self.engine, self.model), handle_signals=False,
                               access_log_class=api.UvicornStyleAccessLogger,
                               access_log=logging.getLogger("standin.http"))
        await runner.setup()
        if not await self._bind(web.TCPSite(runner, self.args["host"], self.args["port"],
                                            reuse_address=True)):
            await runner.cleanup()
            return 1
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        loop.add_signal_handler(signal.SIGQUIT, self._running_phase_sigquit)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)

        await self._warm_up()
        decode_logs = asyncio.ensure_future(self.engine.log_decode_batches())
        await self.stopping.wait()
        if self.engine.gracefully_exit:
            await self._drain()
            self.kill_process_tree()
        decode_logs.cancel()  # SIGINT: uvicorn's plain shutdown
        logger.info("INFO:     Shutting down")
        await runner.cleanup()
        logger.info("INFO:     Finished server process [%s]", os.getpid())
        return 0

    async def _bind(self, site):
        host, port = self.args["host"], self.args["port"]
        logger.info("INFO:     Started server process [%s]", os.getpid())
        logger.info("INFO:     Waiting for application startup.")
        try:
            await site.start()
        except OSError as exc:
            logger.error("ERROR:    [Errno %s] error while attempting to bind on address (%r, %s): %s",
                         exc.errno, host, port, (exc.strerror or str(exc)).lower())
            return False
        logger.info("INFO:     Application startup complete.")
        logger.info("INFO:     Uvicorn running on http://%s:%s (Press CTRL+C to quit)", host, port)
        marker("port_open")
        return True

    async def _warm_up(self):
        """Phase B: /health answers 503 until this returns (or a signal interrupts it)."""
        from .engine import UP

        if not self.args["skip_server_warmup"] and not await self._stopped_within(self.knobs.warmup_seconds):
            if self.knobs.warmup_fail:
                logger.error("Initialization failed. warmup error: %s", WARMUP_ERROR)
                self.kill_process_tree()
        if not self.stopping.is_set():
            self.engine.status = UP
            logger.info("The server is fired up and ready to roll!")
            marker("ready")

    async def _stopped_within(self, seconds):
        """Sleep, unless a signal asks the server to stop first (then True)."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def _drain(self):
        """Phase D, as TokenizerManager.sigterm_watchdog: wait for in-flight requests."""
        from .engine import UNHEALTHY

        while True:
            if self.engine.status == UNHEALTHY:
                logger.error("Signal SIGTERM received while health check failed. Force exiting.")
                return
            if args_mod.env_flag("SGL_FORCE_SHUTDOWN", "false"):
                logger.error("Signal SIGTERM received while force shutdown flag set. Force exiting.")
                return
            remaining = self.engine.running + self.engine.queued
            logger.info("Gracefully exiting... Remaining number of requests %s.", remaining)
            if not remaining:
                return
            await asyncio.sleep(self.knobs.drain_poll_seconds)

    def run(self):
        signal.signal(signal.SIGQUIT, self._launch_phase_sigquit)
        try:
            self.start_workers()
            importlib.import_module(".api", __package__)  # the HTTP stack loads while the schedulers do
            self.wait_for_schedulers()
            return asyncio.run(self.serve())
        finally:
            # launch_server.py's `finally: kill_process_tree(os.getpid(), include_parent=False)`
            self.kill_children()


def main(argv=None):
    server_args = args_mod.prepare_server_args(sys.argv[1:] if argv is None else argv)
    try:
        knobs = Knobs.from_env()
    except KnobError as exc:
        sys.stderr.write(f"standin: {exc}\n")
        return 2
    configure_logging(server_args)
    marker("started")
    logger.info("server_args=%s", args_mod.format_server_args(server_args))
    error = weights.config_error(server_args["model_path"])
    if error:  # transformers' AutoConfig, before any process starts
        sys.stderr.write(f"Traceback (most recent call last):\n  File \"transformers/configuration_utils.py\", "
                         f"in _get_config_dict\n{error}\n")
        return 1
    return Launcher(server_args, knobs, args_mod.model_config(server_args)).run()
