"""`/metrics` in Prometheus text format, with SGLang 0.5.7's metric names and labels.

Rendered by hand: the image has no prometheus_client, and the format is small.
"""

import time


def _labels(pairs):
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())
    return "{" + inner + "}" if inner else ""


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    return repr(float(value))


class _Writer:
    def __init__(self):
        self.lines = []

    def family(self, name, kind, doc):
        self.lines += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]

    def sample(self, name, labels, value):
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name, doc, labels, hist):
        self.family(name, "histogram", doc)
        for bound, count in zip(hist.buckets, hist.counts):
            self.sample(name + "_bucket", {**labels, "le": _number(bound)}, count)
        self.sample(name + "_bucket", {**labels, "le": "+Inf"}, hist.total)
        self.sample(name + "_count", labels, hist.total)
        self.sample(name + "_sum", labels, hist.sum)


def render(eng):
    args = eng.args
    model = args["served_model_name"]
    tokenizer_labels = {"model_name": model}
    scheduler_labels = {"model_name": model, "engine_type": "unified", "tp_rank": "0",
                        "pp_rank": "0", "moe_ep_rank": "0"}
    stats = eng.stats
    now = time.time()
    w = _Writer()

    gauges = [
        ("sglang:num_running_reqs", "The number of running requests.", eng.running),
        ("sglang:num_used_tokens", "The number of used tokens.", eng.tokens_in_use),
        ("sglang:token_usage", "The token usage.", eng.tokens_in_use / eng.max_total_num_tokens),
        ("sglang:gen_throughput", "The generation throughput (token/s).", stats.gen_throughput(now)),
        ("sglang:num_queue_reqs", "The number of requests in the waiting queue.", eng.queued),
        ("sglang:cache_hit_rate", "The prefix cache hit rate.", 0.0),
        ("sglang:max_total_num_tokens", "Maximum total number of tokens in the KV cache pool.",
         eng.max_total_num_tokens),
        ("sglang:utilization", "The utilization.", 1.0 if eng.running else 0.0),
        ("sglang:engine_startup_time", "The time taken for the engine to start up.",
         eng.load_seconds),
        ("sglang:engine_load_weights_time", "The time taken for the engine to load weights.",
         eng.load_seconds),
        ("sglang:is_cuda_graph", "Whether the batch is using CUDA graph.",
         0.0 if args.get("disable_cuda_graph") else 1.0),
    ]
    for name, doc, value in gauges:
        w.family(name, "gauge", doc)
        w.sample(name, scheduler_labels, value)

    counters = [
        ("sglang:prompt_tokens_total", "Number of prefill tokens processed.", stats.prompt_tokens),
        ("sglang:generation_tokens_total", "Number of generation tokens processed.",
         stats.generation_tokens),
        ("sglang:cached_tokens_total", "Number of cached prompt tokens.", 0),
        ("sglang:num_requests_total", "Number of requests processed.", stats.requests),
        ("sglang:num_aborted_requests_total", "Number of requests aborted.", stats.aborted),
    ]
    for name, doc, value in counters:
        w.family(name, "counter", doc)
        w.sample(name, tokenizer_labels, value)

    w.histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                tokenizer_labels, stats.ttft)
    w.histogram("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                tokenizer_labels, stats.itl)
    w.histogram("sglang:e2e_request_latency_seconds",
                "Histogram of End-to-end request latency in seconds", tokenizer_labels, stats.e2e)

    w.family("sglang:http_requests_total", "counter", "Total number of HTTP requests by endpoint and method")
    for (endpoint, method), count in sorted(stats.http_requests.items()):
        w.sample("sglang:http_requests_total", {"endpoint": endpoint, "method": method}, count)
    w.family("sglang:http_responses_total", "counter",
             "Total number of HTTP responses by endpoint and status code")
    for (endpoint, status, method), count in sorted(stats.http_responses.items()):
        w.sample("sglang:http_responses_total",
                 {"endpoint": endpoint, "status_code": str(status), "method": method}, count)
    return "\n".join(w.lines) + "\n"
