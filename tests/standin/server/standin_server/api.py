"""SGLang 0.5.7's HTTP API on aiohttp: routes, auth, error shapes, streaming format."""

import json
import logging
import os
import time
import uuid

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from . import SGLANG_VERSION, engine as eng, metrics, vocab

logger = logging.getLogger("standin")

EXEMPT_FROM_AUTH = ("/health", "/metrics")  # prefixes, as SGLang's middleware checks them
ENGINE_KEY = web.AppKey("engine", eng.Engine)
MODEL_KEY = web.AppKey("model_config", dict)


# -- plumbing ---------------------------------------------------------------------

def _json(data, status=200):
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _native_error(message, status=400):
    return _json({"error": {"message": message}}, status)


def _openai_error(message, status=400, err_type="BadRequestError"):
    return _json({"object": "error", "message": message, "type": err_type, "param": None,
                  "code": status}, status)


def _validation_error(message):
    """The 400 that SGLang's RequestValidationError handler sends."""
    body = {"object": "error", "message": message, "type": "Bad Request", "param": None, "code": 400}
    return web.HTTPBadRequest(text=json.dumps(body), content_type="application/json")


async def _body(request):
    try:
        body = await request.json(loads=json.loads)
    except ValueError as exc:
        raise _validation_error(f"Invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise _validation_error("The request body must be a JSON object")
    return body


def _require_json(request):
    media_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise _validation_error("Unsupported Media Type: Only 'application/json' is allowed")


def _route_name(request):
    info = request.match_info.route.resource
    return info.canonical if info is not None else request.path


@web.middleware
async def _fastapi_errors(request, handler):
    """Unknown routes and methods answer like FastAPI, with a JSON `detail`."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _json({"detail": "Not Found"}, 404)
    except web.HTTPMethodNotAllowed:
        return _json({"detail": "Method Not Allowed"}, 405)


def _auth_middleware(api_key):
    expected = "Bearer " + api_key

    @web.middleware
    async def authenticate(request, handler):
        if request.method == "OPTIONS" or request.path.startswith(EXEMPT_FROM_AUTH):
            return await handler(request)
        if request.headers.get("Authorization") != expected:
            return _json({"error": "Unauthorized"}, 401)
        return await handler(request)

    return authenticate


@web.middleware
async def _count_http(request, handler):
    stats = request.app[ENGINE_KEY].stats
    endpoint = _route_name(request)
    stats.http_requests[(endpoint, request.method)] += 1
    response = await handler(request)
    stats.http_responses[(endpoint, response.status, request.method)] += 1
    return response


class UvicornStyleAccessLogger(AbstractAccessLogger):
    """`INFO:     127.0.0.1:40104 - "GET /health HTTP/1.1" 200 OK`, like uvicorn's lines."""

    def log(self, request, response, time):
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = f"{peer[0]}:{peer[1]}" if peer else "-"
        version = f"{request.version.major}.{request.version.minor}"
        self.logger.info(f'INFO:     {client} - "{request.method} {request.path_qs} HTTP/{version}" '
                         f"{response.status} {response.reason}")


# -- generation helpers ------------------------------------------------------------

class _Sse:
    """A text/event-stream response written chunk by chunk."""

    def __init__(self, request):
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                    "Cache-Control": "no-cache"})

    async def start(self):
        await self.response.prepare(self.request)

    async def send(self, obj):
        payload = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        await self.response.write(b"data: " + payload.encode() + b"\n\n")

    async def done(self):
        await self.send("[DONE]")
        await self.response.write_eof()
        return self.response


async def _stream_error(request, message):
    """SGLang reports a failure inside an already-200 stream as an error event."""
    sse = _Sse(request)
    await sse.start()
    await sse.send({"error": {"message": message}})
    return await sse.done()


def _check(engine, prompt_tokens, max_new_tokens):
    """Fault knobs, then SGLang's own validation.

    Raises InjectedError (error mode "http": the caller answers 500) or
    RequestError (a 400, or an error event inside a stream).
    """
    try:
        engine.admit()
    except eng.InjectedError as exc:
        if engine.knobs.error_mode == "http":
            raise
        raise eng.RequestError(str(exc)) from None
    engine.validate(prompt_tokens, max_new_tokens)


# -- native API ----------------------------------------------------------------------

async def health(request):
    engine = request.app[ENGINE_KEY]
    if engine.gracefully_exit:
        logger.info("Health check request received during shutdown. Returning 503.")
        return web.Response(status=503)
    if engine.status == eng.STARTING:
        return web.Response(status=503)
    probe = os.environ.get("SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION", "true").lower() in ("1", "true")
    if not probe and request.path == "/health":
        return web.Response(status=200)
    timeout = float(os.environ.get("SGLANG_HEALTH_CHECK_TIMEOUT", 20))
    tic = time.time()
    if await engine.health_probe(timeout):
        engine.status = eng.UP
        return web.Response(status=200)
    logger.error("Health check failed. Server couldn't get a response from detokenizer for last "
                 "%s seconds. tic start time: %s. last_heartbeat time: %s",
                 int(timeout), time.strftime('%H:%M:%S', time.localtime(tic)),
                 time.strftime('%H:%M:%S', time.localtime(engine.started_at)))
    return web.Response(status=503)


def _model_info(request):
    engine = request.app[ENGINE_KEY]
    args, model = engine.args, request.app[MODEL_KEY]
    return {"model_path": args["model_path"], "tokenizer_path": args["tokenizer_path"],
            "is_generation": True, "preferred_sampling_params": args["preferred_sampling_params"],
            "weight_version": args["weight_version"], "has_image_understanding": False,
            "has_audio_understanding": False, "model_type": model["model_type"],
            "architectures": model["architectures"]}


async def model_info(request):
    if request.path == "/get_model_info":
        logger.warning("Endpoint '/get_model_info' is deprecated and will be removed in a future "
                       "version. Please use '/model_info' instead.")
    return _json(_model_info(request))


async def server_info(request):
    """Server args (api_key included, as in SGLang) + scheduler info + version."""
    if request.path == "/get_server_info":
        logger.warning("Endpoint '/get_server_info' is deprecated and will be removed in a future "
                       "version. Please use '/server_info' instead.")
    engine = request.app[ENGINE_KEY]
    internal = {**engine.args,
                "last_gen_throughput": engine.stats.gen_throughput(time.time()),
                "memory_usage": {"weight": 24.0, "kvcache": 120.0,
                                 "token_capacity": engine.max_total_num_tokens, "graph": 0.5}}
    return _json({**engine.args, "status": "ready", "max_total_num_tokens": engine.max_total_num_tokens,
                  "max_req_input_len": engine.context_len - 1, "internal_states": [internal],
                  "version": SGLANG_VERSION})


async def get_load(request):
    engine = request.app[ENGINE_KEY]
    return _json([{"dp_rank": 0, "num_reqs": engine.running + engine.queued,
                   "num_waiting_reqs": engine.queued, "num_tokens": engine.tokens_in_use}])


async def flush_cache(request):
    return web.Response(text="Cache flushed.\nPlease check backend logs for more details. (When there "
                             "are running or waiting requests, the operation will not be performed.)\n")


async def ping(request):
    return web.Response(status=200)


def _meta(rid, step, prompt_tokens, started, first):
    meta = {"id": rid, "finish_reason": step.finish_reason, "prompt_tokens": prompt_tokens,
            "weight_version": "default", "total_retractions": 0,
            "completion_tokens": step.completion_tokens, "cached_tokens": 0}
    if first:
        meta["response_sent_to_client_ts"] = time.time()
    if step.finish_reason is not None:
        meta["e2e_latency"] = time.monotonic() - started
    return meta


async def generate(request):
    """POST /generate: SGLang's native API; cumulative `text` in every streamed chunk."""
    engine = request.app[ENGINE_KEY]
    body = await _body(request)
    text, input_ids = body.get("text"), body.get("input_ids")
    if text is None and input_ids is None:
        if body.get("input_embeds") is not None:
            return _native_error("standin: input_embeds requests are not supported")
        return _native_error("Either text, input_ids or input_embeds should be provided.")
    if isinstance(text, list) or (input_ids and isinstance(input_ids[0], list)):
        return _native_error("standin: batch requests are not supported")
    if not (isinstance(text, str) or isinstance(input_ids, list)):
        return _native_error("text must be a string and input_ids a list of token ids")
    params = body.get("sampling_params") or {}
    max_new_tokens = params.get("max_new_tokens", eng.DEFAULT_MAX_NEW_TOKENS)
    streaming = bool(body.get("stream", False))
    prompt_tokens = len(input_ids) if input_ids is not None else vocab.token_count(text)
    rid = body.get("rid") or uuid.uuid4().hex

    try:
        _check(engine, prompt_tokens, max_new_tokens)
    except eng.InjectedError as exc:
        return _native_error(str(exc), 500)
    except eng.RequestError as exc:
        logger.error("[http_server] Error: %s", exc)
        return await _stream_error(request, str(exc)) if streaming else _native_error(str(exc))

    steps = engine.generate(prompt_tokens, max_new_tokens, bool(params.get("ignore_eos", False)),
                            text if text is not None else input_ids)
    started = time.monotonic()
    interval = max(1, int(engine.args["stream_interval"] or 1))
    text_so_far, ids, sent = "", [], 0

    def chunk(step):
        # output_ids are cumulative unless --stream-output makes them incremental.
        out_ids = ids[sent:] if streaming and engine.args["stream_output"] else list(ids)
        return {"text": text_so_far.lstrip(), "output_ids": out_ids,
                "meta_info": _meta(rid, step, prompt_tokens, started, first=step.completion_tokens <= 1)}

    if not streaming:
        async for step in steps:
            text_so_far += step.piece
            ids.append(step.token_id)
        return _json(chunk(step))
    sse = _Sse(request)
    await sse.start()
    async for step in steps:
        text_so_far += step.piece
        ids.append(step.token_id)
        k = step.completion_tokens
        if step.finish_reason is not None or k == 1 or k % interval == 0:
            await sse.send(chunk(step))
            sent = len(ids)
    return await sse.done()


# -- OpenAI-compatible API --------------------------------------------------------------

def _usage(prompt_tokens, completion_tokens):
    return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens, "prompt_tokens_details": None, "reasoning_tokens": 0}


def _finish(step):
    reason = step.finish_reason or {}
    if reason.get("type") == "stop":
        return "stop", reason.get("matched")
    return "length", None


def _openai_prompt(body, chat):
    """(prompt text, prompt tokens, max_new_tokens) of an OpenAI request; RequestError if malformed."""
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise eng.RequestError("messages must be a non-empty list")
        # The messages' text plus a few chat-template tokens per message.
        text = " ".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))
        return text, vocab.token_count(text) + 3 * len(messages), \
            body.get("max_completion_tokens", body.get("max_tokens"))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    max_tokens = body.get("max_tokens", 16)  # the completions API's default
    if isinstance(prompt, str):
        return prompt, vocab.token_count(prompt), max_tokens
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return json.dumps(prompt), len(prompt), max_tokens
    raise eng.RequestError("standin: prompt must be one string or one list of token ids")


async def _openai(request, chat):
    _require_json(request)
    engine = request.app[ENGINE_KEY]
    body = await _body(request)
    streaming = bool(body.get("stream", False))
    try:
        prompt_text, prompt_tokens, max_new_tokens = _openai_prompt(body, chat)
        _check(engine, prompt_tokens, max_new_tokens)
    except eng.InjectedError as exc:
        return _openai_error(str(exc), 500, "InternalServerError")
    except eng.RequestError as exc:
        return await _stream_error(request, str(exc)) if streaming else _openai_error(str(exc))

    prefix, obj, chunk_obj = (("chatcmpl-", "chat.completion", "chat.completion.chunk") if chat
                              else ("cmpl-", "text_completion", "text_completion"))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    model = body.get("model") or engine.args["served_model_name"]
    rid = prefix + uuid.uuid4().hex
    created = int(time.time())
    steps = engine.generate(prompt_tokens, max_new_tokens, bool(body.get("ignore_eos", False)), prompt_text)

    def choice(delta_text, step, first):
        finish, matched = _finish(step) if step.finish_reason else (None, None)
        if chat:
            delta = {"role": "assistant", "content": ""} if first else (
                {"content": delta_text} if delta_text else {})
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish,
                    "matched_stop": matched}
        return {"index": 0, "text": delta_text, "logprobs": None, "finish_reason": finish,
                "matched_stop": matched}

    def chunk(choices, usage=None):
        return {"id": rid, "object": chunk_obj, "created": created, "model": model,
                "choices": choices, "usage": usage}

    if streaming:
        sse = _Sse(request)
        await sse.start()
        emitted = ""
        last = None
        if chat:
            await sse.send(chunk([choice("", eng.Step(0, "", 0, None), first=True)]))
        async for step in steps:
            piece = step.piece if emitted else step.piece.lstrip()
            emitted += piece
            last = step
            if chat and step.finish_reason is not None:
                if piece:
                    await sse.send(chunk([choice(piece, eng.Step(0, "", 0, None), first=False)]))
                await sse.send(chunk([choice("", step, first=False)]))
            elif piece or step.finish_reason is not None:
                await sse.send(chunk([choice(piece, step, first=False)]))
        if include_usage and last is not None:
            await sse.send(chunk([], _usage(prompt_tokens, last.completion_tokens)))
        return await sse.done()

    text, last = "", None
    async for step in steps:
        text += step.piece
        last = step
    finish, matched = _finish(last)
    text = text.lstrip()
    if chat:
        body_choice = {"index": 0, "message": {"role": "assistant", "content": text,
                                               "reasoning_content": None, "tool_calls": None},
                       "logprobs": None, "finish_reason": finish, "matched_stop": matched}
    else:
        body_choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
                       "matched_stop": matched}
    return _json({"id": rid, "object": obj, "created": created, "model": model,
                  "choices": [body_choice], "usage": _usage(prompt_tokens, last.completion_tokens),
                  "metadata": {"weight_version": "default"}})


async def completions(request):
    return await _openai(request, chat=False)


async def chat_completions(request):
    return await _openai(request, chat=True)


def _model_card(engine):
    name = engine.args["served_model_name"]
    return {"id": name, "object": "model", "created": int(engine.started_at), "owned_by": "sglang",
            "root": name, "parent": None, "max_model_len": engine.context_len}


async def list_models(request):
    return _json({"object": "list", "data": [_model_card(request.app[ENGINE_KEY])]})


async def retrieve_model(request):
    engine = request.app[ENGINE_KEY]
    name = request.match_info["model"]
    if name != engine.args["served_model_name"]:
        return _json({"error": {"message": f"The model '{name}' does not exist",
                                "type": "invalid_request_error", "param": "model",
                                "code": "model_not_found"}}, 404)
    return _json(_model_card(engine))


async def prometheus(request):
    return web.Response(text=metrics.render(request.app[ENGINE_KEY]),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def make_app(engine, model_config):
    args = engine.args
    middlewares = []
    if args["enable_metrics"]:
        middlewares.append(_count_http)
    middlewares.append(_fastapi_errors)
    if args["api_key"]:
        middlewares.append(_auth_middleware(args["api_key"]))
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024 ** 2)
    app[ENGINE_KEY] = engine
    app[MODEL_KEY] = model_config
    get, post = web.get, web.post
    routes = [get("/health", health), get("/health_generate", health),
              get("/model_info", model_info), get("/get_model_info", model_info),
              get("/server_info", server_info), get("/get_server_info", server_info),
              get("/get_load", get_load), get("/flush_cache", flush_cache), post("/flush_cache", flush_cache),
              get("/ping", ping),
              post("/generate", generate), web.put("/generate", generate),
              post("/v1/completions", completions), post("/v1/chat/completions", chat_completions),
              get("/v1/models", list_models), get("/v1/models/{model:.+}", retrieve_model)]
    if args["enable_metrics"]:
        routes += [get("/metrics", prometheus), get("/metrics/", prometheus)]
    app.add_routes(routes)
    return app
