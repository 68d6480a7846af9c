"""_agent_model: the program that runs huggingface_hub in the transient container.

Its pure parts are tested here; the program itself runs as the module sends it (its source plus
one main() call on the stdin of ``python3 -``) in a subprocess whose ``huggingface_hub`` is a
small stand-in package on PYTHONPATH, which only the boundary (the library) is. The real library
is exercised in tests/integration/test_model_stage.py."""

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _agent_model as A
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import agent_answer, agent_stdin


def hf_error(name, status=None, bases=(Exception,)):
    cls = type(name, bases, {})
    exc = cls("%s happened" % name)
    exc.response = type("Response", (), {"status_code": status})() if status else None
    return exc


@pytest.mark.parametrize("exc, kind", [
    (hf_error("RevisionNotFoundError", 404), "revision_not_found"),
    (hf_error("RepositoryNotFoundError", 401), "repo_not_found"),
    (hf_error("GatedRepoError", 403, (type("RepositoryNotFoundError", (Exception,), {}),)), "gated"),
    (hf_error("HfHubHTTPError", 401), "token_refused"),
    (hf_error("EntryNotFoundError", 404), "entry_not_found"),
    (hf_error("ConnectionError"), "unreachable"),
    (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
    (hf_error("HfHubHTTPError", 500), "hub_error"),
])
def test_classify_names_what_failed(exc, kind):
    assert A.classify(exc) == kind


def test_a_not_found_locally_error_is_judged_by_its_cause():
    wrapper = hf_error("LocalEntryNotFoundError")
    wrapper.__cause__ = hf_error("EntryNotFoundError", 404)
    assert A.classify(wrapper) == "entry_not_found"
    assert A.classify(hf_error("LocalEntryNotFoundError")) == "unreachable"


def test_progress_counts_finished_files_and_the_one_in_flight():
    files = [{"path": "a", "size": 600}, {"path": "b", "size": 400}]
    doc = A.progress_doc(files, 600, 100, "b", 10.0, 14.0)
    assert (doc["bytes_done"], doc["bytes_total"], doc["percent"], doc["current_file"], doc["seconds"]) == \
        (700, 1000, 70.0, "b", 4.0)


def test_partial_bytes_reads_the_incomplete_files_of_one_etag(tmp_path):
    download = tmp_path / ".cache" / "huggingface" / "download"
    download.mkdir(parents=True)
    (download / "x1.aaaa.incomplete").write_bytes(b"1" * 10)
    (download / "x2.bbbb.incomplete").write_bytes(b"1" * 5)
    (download / "x1.metadata").write_bytes(b"1" * 99)
    assert A.partial_bytes(str(tmp_path)) == 15
    assert A.partial_bytes(str(tmp_path), "aaaa") == 10
    assert A.partial_bytes(str(tmp_path / "absent")) == 0


# ---------------------------------------------------------------- the program, as it is sent

FAKE_HUB = '''
import os, time
__version__ = "0.0-test"
SLEEP = float(os.environ.get("FAKE_HUB_SLEEP", "0"))

def hf_hub_download(repo_id, filename, revision=None, local_dir=None):
    if filename == "absent.bin":
        raise EntryNotFoundError("404 Entry Not Found for " + filename)
    if filename == "nospace.bin":
        raise OSError(28, "No space left on device")
    time.sleep(SLEEP)
    path = os.path.join(local_dir, filename)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"x" * int(filename.split(".")[0].split("-")[-1]))
    return path

class EntryNotFoundError(Exception):
    pass
'''


def run_agent(tmp_path, payload, sleep=0):
    package = tmp_path / "lib" / "huggingface_hub"
    (package / "utils").mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_HUB)
    (package / "constants.py").write_text("ENDPOINT = 'http://hub.test'\n")
    (package / "utils" / "__init__.py").write_text("build_hf_headers = get_session = hf_raise_for_status = None\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "lib"), FAKE_HUB_SLEEP=str(sleep))
    done = subprocess.run([sys.executable, "-"], input=agent_stdin(A, payload), capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    return done.returncode, agent_answer(done.stdout), done.stdout


def test_download_fetches_each_file_reports_it_and_leaves_the_progress_file(tmp_path):
    local = tmp_path / "download"
    partial = local / ".cache" / "huggingface" / "download"
    partial.mkdir(parents=True)
    (partial / "h.e2.incomplete").write_bytes(b"x" * 30)  # a file an earlier run began
    payload = {"op": "download", "repo": "org/m", "commit": "c" * 40, "local_dir": str(local),
               "progress_path": str(tmp_path / "progress.json"),
               "files": [{"path": "a-100.bin", "size": 100, "etag": "e1"}, {"path": "sub/b-50.bin", "size": 50, "etag": "e2"}]}
    rc, answer, out = run_agent(tmp_path, payload)
    assert rc == 0 and "fetching sub/b-50.bin (50 bytes, 30 on disk already)" in out
    assert answer["files"] == [
        {"path": "a-100.bin", "status": "fetched", "bytes": 100, "resumed_from": 0, "seconds": answer["files"][0]["seconds"]},
        {"path": "sub/b-50.bin", "status": "fetched", "bytes": 20, "resumed_from": 30, "seconds": answer["files"][1]["seconds"]}]
    assert answer["bytes_downloaded"] == 120 and (local / "sub" / "b-50.bin").read_bytes() == b"x" * 50
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["bytes_total"] == 150 and progress["current_file"] is None


def test_a_missing_file_is_named_and_the_others_still_come_but_a_full_disk_stops_everything(tmp_path):
    files = [{"path": "absent.bin", "size": 1}, {"path": "a-10.bin", "size": 10}, {"path": "nospace.bin", "size": 5},
             {"path": "b-10.bin", "size": 10}]
    rc, answer, _out = run_agent(tmp_path, {"op": "download", "repo": "org/m", "commit": "c" * 40,
                                            "local_dir": str(tmp_path / "d"), "files": files})
    assert rc == 1 and answer["kind"] == "disk_full"
    assert [(f["path"], f["status"]) for f in answer["files"]] == [
        ("absent.bin", "failed"), ("a-10.bin", "fetched"), ("nospace.bin", "failed")]
    assert answer["files"][0]["kind"] == "entry_not_found"


def test_the_agent_stops_itself_at_its_deadline_and_says_so(tmp_path):
    payload = {"op": "download", "repo": "org/m", "commit": "c" * 40, "local_dir": str(tmp_path / "d"),
               "files": [{"path": "a-10.bin", "size": 10}], "deadline": 1}
    rc, answer, _out = run_agent(tmp_path, payload, sleep=30)
    assert rc == 3 and answer == {"error": "the stage's time budget ran out after 1 s", "kind": "deadline"}


def test_an_image_without_huggingface_hub_is_named(tmp_path):
    (tmp_path / "lib" / "huggingface_hub").mkdir(parents=True)
    (tmp_path / "lib" / "huggingface_hub" / "__init__.py").write_text("raise ImportError('not here')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "lib"))
    done = subprocess.run([sys.executable, "-"], input=agent_stdin(A, {"op": "resolve", "repo": "o/m", "revision": "main"}),
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    answer = agent_answer(done.stdout)
    assert done.returncode == 1 and answer["kind"] == "no_hub_library" and "huggingface_hub" in answer["error"]


def test_the_program_keeps_to_the_standard_library_at_import():
    source = textwrap.dedent(open(A.__file__).read())
    imports = [line.split()[1] for line in source.splitlines() if line.startswith("import ")]
    assert set(imports) <= {"base64", "errno", "json", "os", "sys", "threading", "time"}
