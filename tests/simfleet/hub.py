"""A fake model hub for tests: a generated model repo served the way huggingface_hub 0.36 reads it.

Stdlib only (threaded http.server), so it runs in the test venv, in a unit test's thread, and
as a daemon in the bed's upstream namespace (`python -m simfleet.hub serve ...`).

The repo (`generate`) is deterministic for a given (repo id, size, shards, seed): config.json,
the stand-in image's tokenizer files (tests/standin/server/standin_server/assets.py),
`model.safetensors.index.json` with a weight_map, and `model-0000i-of-0000N.safetensors` shards
in the real safetensors layout (u64 little-endian header length, JSON header, tensor data)
whose sizes add up to the size knob. Shards are LFS files (sha256), the rest plain git blobs
(sha1 of `blob <size>\\0<content>`); the commit is the git commit of that tree.

What the server answers (checked against huggingface_hub 0.36.2: hf_api.model_info,
file_download.get_hf_file_metadata / http_get, utils/_http.hf_raise_for_status):

    GET  /api/models/{repo}[/revision/{rev}][?blobs=true]   sha, siblings (+ size, blobId,
                                                            lfs {size, sha256, pointerSize})
    HEAD|GET /{repo}/resolve/{rev}/{file}   plain file: 200, ETag = blob id, Content-Length;
                                            LFS file: 302 to /_lfs/{sha256} with X-Linked-Etag
                                            and X-Linked-Size; X-Repo-Commit on both
    HEAD|GET /_lfs/{sha256}                 the LFS content (the CDN: no token needed)
    GET with `Range: bytes=N-` or `bytes=N-M`: 206 with Content-Range; past the end: 416
    errors: 404 X-Error-Code RevisionNotFound | EntryNotFound (with X-Repo-Commit) |
            RepoNotFound; a required token: none sent -> 401 RepoNotFound (the hub's answer
            for a private repo), a wrong one -> 401 "Invalid credentials in Authorization header"
    GET  /_hub/stats    counters: requests (method, path, status, range, bytes, client address),
                        body bytes
    POST /_hub/knobs    {"drop_after": N, "drops": K}: the next K content GETs send N bytes of
                        the body, then the connection is cut (a resume test); {"token": "..."}
    POST /_hub/reset    zero the counters

`Hub` runs it in a thread for unit tests; `python -m simfleet.hub serve` runs it as a daemon.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

_STANDIN_SERVER = Path(__file__).resolve().parents[1] / "standin" / "server"
if str(_STANDIN_SERVER) not in sys.path:
    sys.path.insert(0, str(_STANDIN_SERVER))
from standin_server import assets  # noqa: E402  (the image's tokenizer files, stdlib only)

DEFAULT_REPO = "moonshotai/Kimi-Linear-48B-A3B-Instruct"  # the collection's default model
DEFAULT_SIZE = 32 * 1024 * 1024
DEFAULT_SHARDS = 4
INDEX = "model.safetensors.index.json"
META = ".simfleet-hub.json"                      # the generated repo's description, beside it
COLUMNS = 512                                    # BF16 columns: 1 KiB per tensor row
CHUNK = 1024 * 1024
LAST_MODIFIED = "2025-10-30T12:00:00.000Z"
GIT_DATE = "1761825600 +0000"                    # the same moment, as git writes it
LFS_ATTRIBUTES = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
_SIZE_RE = re.compile(r"^(\d+)\s*([KMG]i?B?|B)?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`32MiB`, `500M`, `1GiB`, `123456` -> bytes (K/M/G are powers of 1024)."""
    match = _SIZE_RE.match(str(text).strip())
    if not match:
        raise ValueError(f"size {text!r}: expected bytes or a number with K, M or G (e.g. 32MiB)")
    unit = (match.group(2) or "B")[0].upper()
    return int(match.group(1)) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]


# ---------------------------------------------------------------------------------------------
# the generated repo

@dataclass(frozen=True)
class RepoFile:
    name: str
    size: int
    git_sha1: str                 # blob id: of the content, or of the LFS pointer
    sha256: str | None = None     # LFS files only
    pointer_size: int | None = None

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None


@dataclass
class ModelRepo:
    repo_id: str
    directory: Path
    commit: str
    files: dict = field(default_factory=dict)       # name -> RepoFile, in tree order

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())

    def by_sha256(self, sha256: str) -> RepoFile | None:
        return next((f for f in self.files.values() if f.sha256 == sha256), None)

    def siblings(self, blobs: bool) -> list:
        out = []
        for f in self.files.values():
            entry = {"rfilename": f.name}
            if blobs:
                entry.update(size=f.size, blobId=f.git_sha1)
                if f.lfs:
                    entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": f.pointer_size}
            out.append(entry)
        return out


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()  # nosec - git's object id


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_commit(files: list, message: str) -> str:
    """The git commit id of a flat tree of these files (as git computes it)."""
    tree = b"".join(b"100644 " + f.name.encode() + b"\x00" + bytes.fromhex(f.git_sha1)
                    for f in sorted(files, key=lambda f: f.name))
    tree_id = hashlib.sha1(b"tree %d\x00" % len(tree) + tree).hexdigest()  # nosec - git's object id
    body = (f"tree {tree_id}\nauthor simfleet <simfleet@localhost> {GIT_DATE}\n"
            f"committer simfleet <simfleet@localhost> {GIT_DATE}\n\n{message}\n").encode()
    return hashlib.sha1(b"commit %d\x00" % len(body) + body).hexdigest()  # nosec - git's object id


def shard_name(index: int, count: int) -> str:
    return f"model-{index:05d}-of-{count:05d}.safetensors"


def safetensors_bytes(tensors: list) -> bytes:
    """A safetensors file: [(name, shape, data)] of BF16 tensors, header padded to 8 bytes."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, data in tensors:
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(data for _name, _shape, data in tensors)


def _shard_tensors(index: int, rows: int, seed: int) -> list:
    """Two tensors of one layer; row counts split so the shard holds `rows` rows in all."""
    rng = random.Random(seed * 1_000_003 + index)
    up = rows // 2
    out = []
    for part, count in (("mlp.down_proj", rows - up), ("mlp.up_proj", up)):
        if count:
            out.append((f"model.layers.{index - 1}.{part}.weight", (count, COLUMNS), rng.randbytes(count * COLUMNS * 2)))
    return out


def generate(directory: Path, repo_id: str = DEFAULT_REPO, size: int = DEFAULT_SIZE,
             shards: int = DEFAULT_SHARDS, seed: int = 0) -> ModelRepo:
    """Write the repo into directory (reused when it already holds this very repo)."""
    if shards < 1 or size < shards * 2 * COLUMNS * 2:
        raise ValueError(f"a repo of {size} bytes cannot hold {shards} shards of at least one row each")
    directory = Path(directory)
    params = {"repo_id": repo_id, "size": size, "shards": shards, "seed": seed}
    reused = _load_generated(directory, params)
    if reused:
        return reused
    directory.mkdir(parents=True, exist_ok=True)
    contents = {}
    weight_map, total = {}, 0
    row_bytes = COLUMNS * 2
    rows_left = size // row_bytes
    for index in range(1, shards + 1):
        rows = rows_left // (shards - index + 1)
        rows_left -= rows
        tensors = _shard_tensors(index, rows, seed)
        name = shard_name(index, shards)
        for tensor, _shape, data in tensors:
            weight_map[tensor] = name
            total += len(data)
        contents[name] = safetensors_bytes(tensors)
    hidden = {"hidden_size": COLUMNS, "num_hidden_layers": shards}
    files = {**assets.tokenizer_files(config=assets.model_config(**hidden)), ".gitattributes": LFS_ATTRIBUTES,
             INDEX: json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"}
    contents.update({name: text.encode() for name, text in files.items()})
    entries = []
    for name in sorted(contents):
        data = contents[name]
        (directory / name).write_bytes(data)
        if name.endswith(".safetensors"):
            sha256 = hashlib.sha256(data).hexdigest()
            pointer = lfs_pointer(sha256, len(data))
            entries.append(RepoFile(name, len(data), git_blob_sha1(pointer), sha256, len(pointer)))
        else:
            entries.append(RepoFile(name, len(data), git_blob_sha1(data)))
    commit = git_commit(entries, f"{repo_id}: {shards} shards, {size} bytes, seed {seed}")
    repo = ModelRepo(repo_id, directory, commit, {f.name: f for f in entries})
    (directory / META).write_text(json.dumps({"params": params, "commit": commit,
                                              "files": [f.__dict__ for f in entries]}, indent=1) + "\n")
    return repo


def _load_generated(directory: Path, params: dict) -> ModelRepo | None:
    try:
        meta = json.loads((directory / META).read_text())
        if meta["params"] != params:
            return None
        files = [RepoFile(**entry) for entry in meta["files"]]
        if any((directory / f.name).stat().st_size != f.size for f in files):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ModelRepo(params["repo_id"], directory, meta["commit"], {f.name: f for f in files})


# ---------------------------------------------------------------------------------------------
# the server

@dataclass
class Knobs:
    token: str | None = None      # when set, /api and /resolve need `Authorization: Bearer <token>`
    drop_after: int = 0           # with drops > 0: bytes of a content body sent before the cut
    drops: int = 0                # how many content GETs are still to be cut


class HubState:
    """The repo, the knobs and the counters, shared by the handler threads."""

    def __init__(self, repo: ModelRepo, knobs: Knobs | None = None):
        self.repo = repo
        self.knobs = knobs or Knobs()
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = deque(maxlen=10000)
            self.body_bytes = 0
            self.dropped = 0

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)
            self.body_bytes += entry.get("bytes", 0)

    def take_drop(self, length: int) -> int | None:
        """Bytes to send before cutting this body, or None to send it whole."""
        with self.lock:
            if self.knobs.drops > 0 and length > self.knobs.drop_after:
                self.knobs.drops -= 1
                self.dropped += 1
                return self.knobs.drop_after
        return None

    def stats(self) -> dict:
        with self.lock:
            return {"repo": self.repo.repo_id, "commit": self.repo.commit, "repo_bytes": self.repo.total_bytes,
                    "requests": list(self.requests), "body_bytes": self.body_bytes, "dropped": self.dropped,
                    "knobs": {"drops": self.knobs.drops, "drop_after": self.knobs.drop_after,
                              "token_required": bool(self.knobs.token)}}


class _Answer(Exception):
    """An error answer: status, X-Error-Code, message, extra headers."""

    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "simfleet-hub"
    state: HubState  # set on the class made per server

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the counters are the log

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def do_POST(self):
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/_hub/reset":
            self.state.reset()
            return self._json(200, {"reset": True})
        if path == "/_hub/knobs":
            try:
                update = json.loads(body or b"{}")
                with self.state.lock:
                    for key in ("drop_after", "drops"):
                        if key in update:
                            setattr(self.state.knobs, key, int(update[key]))
                    if "token" in update:
                        self.state.knobs.token = update["token"] or None
            except (ValueError, TypeError) as exc:
                return self._json(400, {"error": f"bad knobs: {exc}"})
            return self._json(200, self.state.stats()["knobs"])
        return self._json(404, {"error": "not found"})

    # -- routing -------------------------------------------------------------------------

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = url.path
        entry = {"method": self.command, "path": path, "range": self.headers.get("Range"), "bytes": 0,
                 "client": self.client_address[0]}
        try:
            if path == "/_hub/stats":
                self._json(200, self.state.stats())
                return
            if path.startswith("/api/models/"):
                self._authorize()
                entry["status"] = self._model_info(path[len("/api/models/"):], parse_qs(url.query), head)
            elif path.startswith("/_lfs/"):
                item = self.state.repo.by_sha256(path[len("/_lfs/"):])
                if item is None:
                    raise _Answer(404, None, "Not Found")
                entry["status"], entry["bytes"] = self._content(item, head)
            elif "/resolve/" in path:
                self._authorize()
                entry["status"], entry["bytes"] = self._resolve(path, head)
            else:
                raise _Answer(404, None, "Not Found")
        except _Answer as answer:
            entry["status"] = answer.status
            headers = dict(answer.headers)
            if answer.code:
                headers["X-Error-Code"] = answer.code
            headers["X-Error-Message"] = answer.message
            self._json(answer.status, {"error": answer.message}, headers, head=head)
        except (BrokenPipeError, ConnectionResetError):
            entry["status"] = entry.get("status", 0)
            entry["aborted"] = True
        self.state.record(entry)

    def _authorize(self) -> None:
        token = self.state.knobs.token
        if not token:
            return
        sent = self.headers.get("Authorization", "")
        if not sent:
            raise _Answer(401, "RepoNotFound", "Repository not found")
        if sent != f"Bearer {token}":
            raise _Answer(401, None, "Invalid credentials in Authorization header")

    def _repo(self, repo_id: str) -> ModelRepo:
        if repo_id != self.state.repo.repo_id:
            raise _Answer(404, "RepoNotFound", "Repository not found")
        return self.state.repo

    def _revision(self, repo: ModelRepo, revision: str) -> str:
        if revision not in ("main", repo.commit):
            raise _Answer(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo.commit

    def _model_info(self, rest: str, query: dict, head: bool) -> int:
        repo_id, revision = rest, "main"
        if "/revision/" in rest:
            repo_id, revision = rest.split("/revision/", 1)
            revision = unquote(revision)
        repo = self._repo(unquote(repo_id))
        commit = self._revision(repo, revision)
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        config = json.loads(repo.path("config.json").read_text())
        info = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],  # nosec - an id, not security
                "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
                "sha": commit, "lastModified": LAST_MODIFIED, "createdAt": LAST_MODIFIED,
                "private": bool(self.state.knobs.token), "gated": False, "disabled": False,
                "downloads": 0, "likes": 0, "library_name": "transformers", "tags": ["safetensors"],
                "pipeline_tag": "text-generation",
                "config": {"architectures": config["architectures"], "model_type": config["model_type"]},
                "siblings": repo.siblings(blobs)}
        self._json(200, info, head=head)
        return 200

    def _resolve(self, path: str, head: bool) -> tuple:
        repo_id, rest = path.lstrip("/").split("/resolve/", 1)
        revision, _slash, name = rest.partition("/")
        repo = self._repo(unquote(repo_id))
        commit = self._revision(repo, unquote(revision))
        item = repo.files.get(unquote(name))
        if item is None:
            raise _Answer(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
        if item.lfs:
            # As the hub does: the LFS content lives elsewhere (a CDN); the HEAD answer
            # describes it with X-Linked-* and the client fetches the Location.
            host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
            body = f"Found. Redirecting to http://{host}/_lfs/{item.sha256}".encode()
            self._send(302, {"Location": f"http://{host}/_lfs/{item.sha256}", "X-Repo-Commit": commit,
                             "X-Linked-Etag": f'"{item.sha256}"', "X-Linked-Size": str(item.size),
                             "ETag": f'"{item.git_sha1}"', "Content-Type": "text/plain; charset=utf-8",
                             "Content-Length": str(len(body))}, b"" if head else body)
            return 302, 0
        return self._content(item, head, {"X-Repo-Commit": commit, "ETag": f'"{item.git_sha1}"'})

    def _content(self, item: RepoFile, head: bool, extra: dict | None = None) -> tuple:
        start, end, status = 0, item.size - 1, 200
        requested = self.headers.get("Range")
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream", **(extra or {})}
        if item.lfs and "ETag" not in headers:
            headers["ETag"] = f'"{item.sha256}"'
        if requested:
            match = re.match(r"^bytes=(\d+)-(\d*)$", requested.strip())
            if not match or int(match.group(1)) >= item.size:
                raise _Answer(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{item.size}"})
            start = int(match.group(1))
            end = min(int(match.group(2)), item.size - 1) if match.group(2) else item.size - 1
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{item.size}"
        length = end - start + 1
        headers["Content-Length"] = str(length)
        self._send(status, headers)
        if head:
            return status, 0
        cut = self.state.take_drop(length)
        sent = self._stream(self.state.repo.path(item.name), start, length if cut is None else cut)
        if cut is not None:
            # The connection ends short of Content-Length: the client reads what was sent, then
            # sees the body break (a reset instead would discard bytes still in its buffer).
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.close_connection = True
        return status, sent

    def _stream(self, path: Path, start: int, length: int) -> int:
        sent = 0
        with open(path, "rb") as source:
            source.seek(start)
            while sent < length:
                chunk = source.read(min(CHUNK, length - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        return sent

    # -- writing -------------------------------------------------------------------------

    def _send(self, status: int, headers: dict, body: bytes = b"") -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, data, headers: dict | None = None, head: bool = False) -> None:
        body = json.dumps(data).encode()
        self._send(status, {"Content-Type": "application/json; charset=utf-8",
                            "Content-Length": str(len(body)), **(headers or {})}, b"" if head else body)


class Hub:
    """The hub on host:port in a thread (port 0: any free port). A context manager."""

    def __init__(self, repo: ModelRepo, host: str = "127.0.0.1", port: int = 0, knobs: Knobs | None = None):
        self.state = HubState(repo, knobs)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="simfleet-hub",
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def knobs(self) -> Knobs:
        return self.state.knobs

    def stats(self) -> dict:
        return self.state.stats()

    def __enter__(self) -> "Hub":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def ready(address: str, timeout: float = 0.5) -> bool:
    """The hub at host:port answers its stats."""
    import http.client  # pylint: disable=import-outside-toplevel

    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/_hub/stats")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simfleet.hub", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in ("serve", "generate"):
        cmd = sub.add_parser(verb)
        cmd.add_argument("--dir", required=True, help="where the generated repo lives (reused if it matches)")
        cmd.add_argument("--repo", default=DEFAULT_REPO)
        cmd.add_argument("--size", default=str(DEFAULT_SIZE), help="total size of the shards (e.g. 32MiB)")
        cmd.add_argument("--shards", type=int, default=DEFAULT_SHARDS)
        cmd.add_argument("--seed", type=int, default=0)
    serve = sub.choices["serve"]
    serve.add_argument("--listen", default="127.0.0.1:0", help="host:port")
    serve.add_argument("--token-file", help="require the token in this file (0600)")
    serve.add_argument("--pidfile")
    args = parser.parse_args(argv)
    started = time.monotonic()
    repo = generate(Path(args.dir), args.repo, parse_size(args.size), args.shards, args.seed)
    print(json.dumps({"repo": repo.repo_id, "commit": repo.commit, "bytes": repo.total_bytes,
                      "files": len(repo.files), "seconds": round(time.monotonic() - started, 2)}), flush=True)
    if args.command == "generate":
        return 0
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    host, port = args.listen.rsplit(":", 1)
    hub = Hub(repo, host, int(port), Knobs(token=token))
    if args.pidfile:
        Path(args.pidfile).write_text(f"{os.getpid()}\n")
    print(f"simfleet hub: {repo.repo_id}@{repo.commit} on {hub.url}", flush=True)
    try:
        hub.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
