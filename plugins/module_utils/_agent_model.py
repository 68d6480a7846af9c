# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Agent that the sglang_model module runs in a transient container of ``sglang_image``.

The module starts ``docker run --rm -i --network host --entrypoint python3 IMAGE -`` and sends
this file's source on its stdin, followed by one ``raise SystemExit(main("<base64 JSON
payload>"))`` line (the docker CLI seam's agent protocol). huggingface_hub, which the SGLang image
carries, does the talking to the hub: it reads HF_ENDPOINT and HF_TOKEN_PATH (a read-only mounted
0600 file) from this process's environment when it is imported, so neither the endpoint's
answer nor the token passes through the payload. The answer is the last JSON object printed.

Operations (payload ``op``):

``resolve``   the revision's commit and its file list with sizes and hashes: the hub's
              ``GET /api/models/{repo}/revision/{revision}?blobs=true`` answer, unchanged (the
              module turns it into a manifest and checks it).
``download``  ``hf_hub_download`` of each listed file, at the resolved commit, into
              ``local_dir`` (a staging directory the module mounted read-write). huggingface_hub
              resumes a ``.incomplete`` file left by an interrupted run with an HTTP Range
              request. A progress file (bytes done and total, the current file) is rewritten
              every few seconds. The agent does not verify: the module hashes every file on the
              host before it moves one into place.

A failure answers ``{"error": ..., "kind": ...}`` with ``kind`` one of KINDS, so the module can
name the variable to fix. The agent stops itself at ``deadline`` seconds (before the docker CLI's
own limit) and reports what it had done; what it fetched stays for the next run.
Standard library only at import; huggingface_hub is imported when an operation runs.
"""

import base64
import errno
import json
import os
import sys
import threading
import time

KINDS = ("revision_not_found", "repo_not_found", "token_refused", "gated", "entry_not_found",
         "unreachable", "disk_full", "deadline", "no_hub_library", "hub_error")
PROGRESS_EVERY = 2.0  # seconds between rewrites of the progress file
_OUT = threading.Lock()
_STATE = {"answered": False}


# --------------------------------------------------------------------------- pure parts


def classify(exc):
    """KINDS entry for an exception of huggingface_hub, requests or the OS (by class name, so
    this runs without the library). A 'not found locally' error is judged by its cause: the
    library wraps a failed HEAD request (a file the hub does not have, an unreachable hub) in it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names = [cls.__name__ for cls in type(exc).__mro__]
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if "LocalEntryNotFoundError" in names:
            if exc.__cause__ is not None:
                exc = exc.__cause__
                continue
            return "unreachable"
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return "disk_full"
        if "RevisionNotFoundError" in names:
            return "revision_not_found"
        if "EntryNotFoundError" in names:
            return "entry_not_found"
        if "GatedRepoError" in names:
            return "gated"
        if "RepositoryNotFoundError" in names:
            return "repo_not_found"
        if status in (401, 403):
            return "token_refused"
        if "OfflineModeIsEnabled" in names or "ConnectionError" in names or "Timeout" in names:
            return "unreachable"
        exc = exc.__cause__ or exc.__context__
    return "hub_error"


def describe(exc):
    """One line: the exception's class and its message (huggingface_hub's run over lines)."""
    text = " ".join(str(exc).split())
    return "%s: %s" % (type(exc).__name__, text[:1500]) if text else type(exc).__name__


def progress_doc(files, done, partial, current, started, now):
    """The progress file's content: ``files`` the files of this run ({path, size}), ``done`` the
    bytes of the files finished, ``partial`` the bytes of the file in flight (resumed bytes
    count: they are on the disk)."""
    total = sum(entry["size"] for entry in files)
    have = min(done + partial, total)
    elapsed = max(now - started, 0.0)
    return {"bytes_done": have, "bytes_total": total,
            "percent": round(100.0 * have / total, 1) if total else 100.0,
            "current_file": current, "seconds": round(elapsed, 1),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_json(path, doc):
    """Replace PATH with DOC (a reader never sees half a file)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(doc, handle, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def partial_bytes(local_dir, etag=None):
    """Bytes in huggingface_hub's ``.incomplete`` files under LOCAL_DIR (files in flight), or
    only in the one of the file whose ETag (sha256 or git blob id) is ``etag``: the library
    names them ``<hash of the name>.<etag>.incomplete``."""
    suffix = ".%s.incomplete" % etag if etag else ".incomplete"
    total = 0
    for top, _dirs, names in os.walk(os.path.join(local_dir, ".cache", "huggingface", "download")):
        for name in names:
            if name.endswith(suffix):
                try:
                    total += os.path.getsize(os.path.join(top, name))
                except OSError:
                    pass
    return total


def answer(result):
    """Print the one answer, once (the deadline watchdog and the operation may race)."""
    with _OUT:
        if _STATE["answered"]:
            return False
        _STATE["answered"] = True
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        return True


def say(text):
    with _OUT:
        if not _STATE["answered"]:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


# --------------------------------------------------------------------------- operations


class NoHubLibrary(Exception):
    """The image's Python cannot import huggingface_hub."""


def _hub():
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
    except ImportError as exc:
        raise NoHubLibrary("the image's Python has no huggingface_hub (%s)" % exc)
    return huggingface_hub, constants, build_hf_headers, get_session, hf_raise_for_status


def do_resolve(payload):
    """The hub's revision answer (sha, siblings with size, blobId and lfs.sha256)."""
    hub, constants, build_hf_headers, get_session, hf_raise_for_status = _hub()
    try:
        from urllib.parse import quote
    except ImportError:  # pragma: no cover - Python 2 is not an SGLang image
        from urllib import quote
    url = "%s/api/models/%s/revision/%s" % (constants.ENDPOINT, payload["repo"], quote(payload["revision"], safe=""))
    response = get_session().get(url, headers=build_hf_headers(), params={"blobs": True},
                                 timeout=payload.get("request_timeout") or 60)
    hf_raise_for_status(response)
    return {"info": response.json(), "endpoint": constants.ENDPOINT, "huggingface_hub": hub.__version__}


class Progress(object):
    """Rewrites the progress file while a download runs."""

    def __init__(self, path, files, local_dir, clock=time.time):
        self.path = path
        self.files = files
        self.local_dir = local_dir
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.current = None
        self.stop = threading.Event()

    def write(self):
        if not self.path:
            return
        try:
            write_json(self.path, progress_doc(self.files, self.done, partial_bytes(self.local_dir),
                                               self.current, self.started, self.clock()))
        except OSError:
            pass  # progress is for people; a full disk is reported by the download itself

    def run(self):
        while not self.stop.wait(PROGRESS_EVERY):
            self.write()


def do_download(payload):
    hub, _constants, _h, _s, _r = _hub()
    from huggingface_hub import hf_hub_download
    files = payload["files"]
    local_dir = payload["local_dir"]
    progress = Progress(payload.get("progress_path"), files, local_dir)
    watcher = threading.Thread(target=progress.run)
    watcher.daemon = True
    watcher.start()
    statuses, downloaded = [], 0
    try:
        for entry in files:
            progress.current = entry["path"]
            before = partial_bytes(local_dir, entry.get("etag"))
            say("fetching %s (%d bytes, %d on disk already)" % (entry["path"], entry["size"], before))
            started = time.time()
            try:
                hf_hub_download(payload["repo"], entry["path"], revision=payload["commit"], local_dir=local_dir)
            except Exception as exc:  # pylint: disable=broad-except
                kind = classify(exc)
                statuses.append({"path": entry["path"], "status": "failed", "kind": kind, "error": describe(exc)})
                if kind != "entry_not_found":
                    # the hub, the token or the disk: every further file would fail the same way
                    return {"error": describe(exc), "kind": kind, "files": statuses,
                            "bytes_downloaded": downloaded, "huggingface_hub": hub.__version__}
                continue
            fetched = max(entry["size"] - before, 0)
            downloaded += fetched
            progress.done += entry["size"]
            statuses.append({"path": entry["path"], "status": "fetched", "bytes": fetched,
                             "resumed_from": before, "seconds": round(time.time() - started, 3)})
    finally:
        progress.stop.set()
        progress.current = None
        progress.write()
    return {"files": statuses, "bytes_downloaded": downloaded, "huggingface_hub": hub.__version__}


OPERATIONS = {"resolve": do_resolve, "download": do_download}


def _watchdog(seconds):
    """At the deadline: answer for the operation and end the process (the docker CLI would be
    stopped a little later, without an answer). A partial file stays for the next run."""
    time.sleep(seconds)
    if answer({"error": "the stage's time budget ran out after %d s" % seconds, "kind": "deadline"}):
        os._exit(3)


def main(encoded):
    payload = json.loads(base64.b64decode(encoded).decode("utf-8"))
    if payload.get("deadline"):
        thread = threading.Thread(target=_watchdog, args=(float(payload["deadline"]),))
        thread.daemon = True
        thread.start()
    try:
        result = OPERATIONS[payload["op"]](payload)
    except NoHubLibrary as exc:
        result = {"error": str(exc), "kind": "no_hub_library"}
    except Exception as exc:  # pylint: disable=broad-except
        result = {"error": describe(exc), "kind": classify(exc)}
    answer(result)
    return 1 if "error" in result else 0
