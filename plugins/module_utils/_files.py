# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Result files, written whole or not at all (stdlib only; controller and host side).

Every result file, baseline and summary the collection writes goes through ``write_atomic``:
a temporary file in the same directory, flushed and fsynced, renamed over the target, and the
directory fsynced, so a reader (or a crash, a full disk, a killed run) never sees half a file
and the previous version stays intact when the write fails. ``json_safe`` turns the
non-finite floats Python's json would write as ``NaN``/``Infinity`` (which are not JSON) into
``None``, and says where it did.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile


class WriteError(OSError):
    """An OSError whose message names the file that could not be written."""


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is done
    finally:
        os.close(fd)


def write_atomic(path, text, mode=0o644):
    """Replace ``path`` atomically (a reader never sees half a file).

    On any error the previous file is left as it was, the temporary file is removed, and a
    WriteError (an OSError with the same errno) names ``path``.
    """
    directory = os.path.dirname(path) or "."
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(directory)
    except OSError as exc:
        if isinstance(exc, WriteError):
            raise
        code = exc.errno or errno.EIO
        raise WriteError(code, "could not write %s: %s" % (
            path, exc.strerror or os.strerror(code) if code else exc)) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_files(directory, texts):
    """Write {path: text} under ``directory`` (created 0755 if missing), each atomically."""
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise WriteError(exc.errno or errno.EIO, "could not create the directory %s: %s" % (
            directory, exc.strerror or exc)) from exc
    for path, text in texts.items():
        write_atomic(path, text)


def json_safe(value, where="", found=None):
    """``value`` with every NaN/inf float replaced by None; ``found`` collects their paths."""
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found.append(where or "value")
        return None
    if isinstance(value, dict):
        return {k: json_safe(v, "%s.%s" % (where, k) if where else str(k), found)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, "%s[%d]" % (where, i), found) for i, v in enumerate(value)]
    return value


def json_text(value, indent=2):
    """Strict JSON text (never NaN/Infinity) of ``value`` after json_safe, with a newline."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False) + "\n"
