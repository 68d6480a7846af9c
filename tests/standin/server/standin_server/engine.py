"""The stand-in "model": admission, pacing, output tokens and statistics.

Latency model: a lone request waits `ttft_ms + prefill_ms_per_ktok * prompt/1000`
for its first token and `tpot_ms` per further token; both are multiplied by
`1 + slowdown_per_request * (running - 1)`, re-evaluated at every token, so
latency grows with concurrency the way a batching server's does.
"""

import asyncio
import collections
import dataclasses
import logging
import random
import time
from typing import Optional

from . import vocab

logger = logging.getLogger("standin")

STARTING, UP, UNHEALTHY = "Starting", "Up", "UnHealthy"
DEFAULT_MAX_NEW_TOKENS = 128  # SGLang's SamplingParams default


class RequestError(ValueError):
    """A request SGLang would reject (HTTP 400, or an error event in a stream)."""


class InjectedError(Exception):
    """STANDIN_ERROR_RATE picked this request to fail."""


@dataclasses.dataclass
class Step:
    token_id: int
    piece: str  # text added by this token ("" for EOS)
    completion_tokens: int
    finish_reason: Optional[dict]  # None until the last token


class Histogram:
    def __init__(self, buckets):
        self.buckets = list(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value):
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1


class Stats:
    """What /metrics and /get_server_info report."""

    TTFT_BUCKETS = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400]
    ITL_BUCKETS = [0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035,
                   0.040, 0.060, 0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.0, 2.0, 4.0, 6.0, 8.0]
    E2E_BUCKETS = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400,
                   600, 1200, 1800, 2400]

    def __init__(self):
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.requests = 0
        self.aborted = 0
        self.ttft = Histogram(self.TTFT_BUCKETS)
        self.itl = Histogram(self.ITL_BUCKETS)
        self.e2e = Histogram(self.E2E_BUCKETS)
        self.http_requests = collections.Counter()  # (endpoint, method)
        self.http_responses = collections.Counter()  # (endpoint, status, method)
        self._tokens_per_second = collections.deque(maxlen=6)  # [second, count]

    def count_token(self, now):
        second = int(now)
        if self._tokens_per_second and self._tokens_per_second[-1][0] == second:
            self._tokens_per_second[-1][1] += 1
        else:
            self._tokens_per_second.append([second, 1])

    def gen_throughput(self, now):
        """Tokens/s over the last five whole seconds."""
        current = int(now)
        recent = sum(n for second, n in self._tokens_per_second if current - 5 <= second < current)
        return recent / 5.0


class Engine:
    def __init__(self, server_args, knobs, model_config, *, workers_alive=lambda: True,
                 on_crash=lambda: None, clock=time.monotonic, sleep=asyncio.sleep):
        self.args = server_args
        self.knobs = knobs
        self.context_len = model_config["context_length"]
        self.max_total_num_tokens = model_config["max_total_num_tokens"]
        self.status = STARTING
        self.gracefully_exit = False
        self.started_at = time.time()
        self.load_seconds = 0.0
        self.running = 0
        self.queued = 0
        self.tokens_in_use = 0
        self.seen = 0  # generation requests received (health probes and warm-up excluded)
        self.stalled = False
        self.stats = Stats()
        self._workers_alive = workers_alive
        self._on_crash = on_crash
        self._clock = clock
        self._sleep = sleep
        self._error_rng = random.Random(knobs.seed)
        limit = server_args.get("max_running_requests")
        self._slots = asyncio.Semaphore(limit) if limit else None

    # -- admission -----------------------------------------------------------------

    def admit(self):
        """Account for a new generation request and apply the fault knobs."""
        self.seen += 1
        knobs = self.knobs
        if knobs.crash_after_requests and self.seen > knobs.crash_after_requests:
            self._on_crash()
        if knobs.stall_after_requests and self.seen > knobs.stall_after_requests and not self.stalled:
            logger.warning("[standin] STANDIN_STALL_AFTER_REQUESTS reached: scheduler stops making progress")
            self.stalled = True
        if knobs.error_rate and self._error_rng.random() < knobs.error_rate:
            self.stats.aborted += 1
            raise InjectedError("standin: injected failure (STANDIN_ERROR_RATE)")

    def is_wedged(self):
        return self.stalled or not self._workers_alive()

    def validate(self, prompt_tokens, max_new_tokens):
        """SGLang's context-length checks, with its messages."""
        if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool)):
            raise RequestError(f"max_new_tokens must be an integer, got {max_new_tokens!r}.")
        if max_new_tokens is not None and max_new_tokens < 0:
            raise RequestError(f"max_new_tokens must be at least 0, got {max_new_tokens}.")
        if prompt_tokens >= self.context_len:
            raise RequestError(f"The input ({prompt_tokens} tokens) is longer than the "
                               f"model's context length ({self.context_len} tokens).")
        if max_new_tokens is not None and max_new_tokens + prompt_tokens >= self.context_len:
            raise RequestError(
                "Requested token count exceeds the model's maximum context length "
                f"of {self.context_len} tokens. You requested a total of "
                f"{max_new_tokens + prompt_tokens} tokens: {prompt_tokens} tokens from the input "
                f"messages and {max_new_tokens} tokens for the completion. Please reduce the "
                "number of tokens in the input messages or the completion to fit within the limit.")

    # -- generation ----------------------------------------------------------------

    def _factor(self):
        return 1.0 + self.knobs.slowdown_per_request * max(self.running - 1, 0)

    async def _hang(self):
        await asyncio.Event().wait()  # until the client goes away and the task is cancelled

    async def generate(self, prompt_tokens, max_new_tokens, ignore_eos, seed_text, record=True):
        """Yield one Step per output token, paced by the latency model."""
        if max_new_tokens is None:
            max_new_tokens = self.context_len - prompt_tokens
        seed = vocab.stable_seed(self.args["random_seed"], seed_text)
        # Without ignore_eos the "model" stops at a length of its own choosing.
        eos_at = None if ignore_eos else 1 + seed % 256
        length = max_new_tokens if eos_at is None else min(max_new_tokens, eos_at)
        start = self._clock()
        self.queued += 1
        try:
            if self._slots:
                await self._slots.acquire()
        finally:
            self.queued -= 1
        self.running += 1
        used = prompt_tokens
        self.tokens_in_use += used
        try:
            if self.is_wedged():
                await self._hang()
            knobs = self.knobs
            deadline = self._clock() + (knobs.ttft_ms + knobs.prefill_ms_per_ktok * prompt_tokens
                                        / 1000.0) * self._factor() / 1000.0
            stream = vocab.TokenStream(seed)
            last = start
            for k in range(1, length + 1):
                await self._sleep(max(0.0, deadline - self._clock()))
                if self.is_wedged():
                    await self._hang()
                now = self._clock()
                if record:
                    (self.stats.ttft if k == 1 else self.stats.itl).observe(now - last)
                    self.stats.generation_tokens += 1
                    self.stats.count_token(time.time())
                last = now
                used += 1
                self.tokens_in_use += 1
                if k == eos_at:
                    yield Step(vocab.EOS_ID, "", k, {"type": "stop", "matched": vocab.EOS_ID})
                    break
                token_id, piece = stream.next_token()
                yield Step(token_id, piece, k, {"type": "length", "length": k} if k == length else None)
                deadline = max(deadline, now) + knobs.tpot_ms * self._factor() / 1000.0
            if length == 0:
                await self._sleep(max(0.0, deadline - self._clock()))
                yield Step(vocab.EOS_ID, "", 0, {"type": "length", "length": 0})
            if record:
                self.stats.requests += 1
                self.stats.prompt_tokens += prompt_tokens
                self.stats.e2e.observe(self._clock() - start)
        finally:
            self.running -= 1
            self.tokens_in_use -= used
            if self._slots:
                self._slots.release()

    # -- health --------------------------------------------------------------------

    async def health_probe(self, timeout):
        """/health's one-token generation probe: True if the "scheduler" answered."""
        if self.is_wedged():
            await self._sleep(timeout)
            self.status = UNHEALTHY
            return False
        await self._sleep(self.knobs.health_probe_ms / 1000.0)
        return True

    async def log_decode_batches(self, interval=1.0):
        """SGLang's periodic `Decode batch` line, at most once a second while busy."""
        while True:
            await asyncio.sleep(interval)
            if self.running:
                logger.info(
                    "Decode batch, #running-req: %s, #token: %s, token usage: %.2f, "
                    "cuda graph: True, gen throughput (token/s): %.2f, #queue-req: %s, ",
                    self.running, self.tokens_in_use, self.tokens_in_use / self.max_total_num_tokens,
                    self.stats.gen_throughput(time.time()), self.queued)
