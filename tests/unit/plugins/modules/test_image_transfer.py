"""image_transfer: the real main() with the docker CLI at run_command (conftest's fake_docker) acting
like a daemon holding images; the archive, its manifest and the stamp are real files."""
import hashlib
import json
import os

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest as M
from ansible_collections.sglang_rocm.fleet.plugins.modules import image_transfer

IMAGE = "10.0.0.1:5000/org/small:1"
SEED_ID = "sha256:" + "ab" * 32
OTHER_ID = "sha256:" + "cd" * 32
TAR = b"a docker save archive" * 100
PREFIX = ["/usr/bin/timeout", "--kill-after=5", "3600", "/usr/bin/docker", "--host", "unix:///var/run/docker.sock"]


class Daemon:
    """Answers image inspect / save / load as a daemon with ``images`` {reference: id} would."""

    def __init__(self, images=None, loads_as=SEED_ID, load_fails=False):
        self.images = dict(images or {})
        self.loads_as = loads_as
        self.load_fails = load_fails
        self.commands = []

    def __call__(self, call):
        assert call.argv[:len(PREFIX)] == PREFIX
        args = call.argv[len(PREFIX):]
        self.commands.append(args[0] if args[0] != "image" else "inspect")
        if args[:3] == ["image", "inspect", "--format"]:
            ref = args[4]
            if ref not in self.images:
                return 1, "", "Error response from daemon: No such image: %s\n" % ref
            return 0, json.dumps({"Id": self.images[ref], "RepoDigests": []}) + "\n", ""
        if args[0] == "save":
            assert args[1] == "--output" and args[3] == IMAGE
            with open(args[2], "wb") as handle:
                handle.write(TAR)
            return 0, "", ""
        if args[0] == "load":
            assert args[1] == "--input" and open(args[2], "rb").read() == TAR
            if self.load_fails:
                return 1, "", "Error processing tar file: unexpected EOF\n"
            self.images[IMAGE] = self.loads_as
            return 0, "Loaded image: %s\n" % IMAGE, ""
        raise AssertionError("unexpected docker call %s" % args)


@pytest.fixture(name="run")
def fixture_run(fake_docker, run_main, capsys):
    def run(args, daemon, check_mode=False):
        docker = fake_docker(daemon)
        return run_main(image_transfer.main, dict({"image": IMAGE, "host": "gpu01"}, **args), docker, capsys,
                        check_mode=check_mode)
    return run


def archive(tmp_path):
    return tmp_path / ("image-%s.tar" % ("ab" * 8))


def test_the_seed_saves_once_as_a_verified_one_file_manifest(tmp_path, run):
    daemon = Daemon({IMAGE: SEED_ID})
    out = run({"state": "saved", "dir": str(tmp_path / "stage")}, daemon)
    assert out["_rc"] == 0 and out["changed"] and out["image_id"] == SEED_ID
    stage = tmp_path / "stage"
    assert out["manifest"]["revision"] == SEED_ID and out["manifest"]["repo"] == IMAGE
    assert out["manifest"]["files"] == [{"path": archive(tmp_path).name, "size": len(TAR),
                                         "sha256": hashlib.sha256(TAR).hexdigest(), "git_sha1": None}]
    assert oct(stage.stat().st_mode & 0o777) == "0o700"
    assert oct((stage / archive(tmp_path).name).stat().st_mode & 0o777) == "0o600"
    assert M.check_tree(str(stage), out["manifest"])["ok"] == [archive(tmp_path).name]
    assert daemon.commands == ["inspect", "save"]
    again = run({"state": "saved", "dir": str(stage)}, daemon)
    assert again["_rc"] == 0 and not again["changed"] and again["manifest"] == out["manifest"]
    assert daemon.commands == ["inspect", "save", "inspect"]  # not saved again


def test_the_seed_without_the_image_fails_and_check_mode_saves_nothing(tmp_path, run):
    out = run({"state": "saved", "dir": str(tmp_path / "stage")}, Daemon())
    assert out["_rc"] == 1 and out["msg"] == ("Host gpu01: image %s is not on the seed, so it cannot be saved "
                                              "for the other hosts" % IMAGE)
    out = run({"state": "saved", "dir": str(tmp_path / "stage")}, Daemon({IMAGE: SEED_ID}), check_mode=True)
    assert out["_rc"] == 0 and out["changed"] and out["manifest"] is None
    assert not (tmp_path / "stage").exists()


def saved_on(tmp_path, run):
    out = run({"state": "saved", "dir": str(tmp_path)}, Daemon({IMAGE: SEED_ID}))
    return out["manifest"]


def test_a_receiver_loads_checks_the_id_and_removes_the_archive(tmp_path, run):
    manifest = saved_on(tmp_path, run)
    os.remove(tmp_path / (archive(tmp_path).name + ".manifest.json"))  # a receiver gets the archive only
    daemon = Daemon()
    out = run({"state": "loaded", "dir": str(tmp_path), "manifest": manifest, "image_id": SEED_ID}, daemon)
    assert out["_rc"] == 0 and out["changed"] and out["loaded"] and out["image_id"] == SEED_ID
    assert daemon.commands == ["inspect", "load", "inspect"]
    assert "ansible_facts" not in out  # the container role's second plan reads the image's facts
    assert os.listdir(tmp_path) == [] and out["removed"] == [str(archive(tmp_path))]
    again = run({"state": "loaded", "dir": str(tmp_path), "manifest": manifest, "image_id": SEED_ID}, daemon)
    assert again["_rc"] == 0 and not again["changed"] and not again["loaded"]


def test_the_seed_loads_nothing_and_removes_its_archive_unless_kept(tmp_path, run):
    manifest = saved_on(tmp_path, run)
    args = {"state": "loaded", "dir": str(tmp_path), "manifest": manifest, "image_id": SEED_ID}
    kept = run(dict(args, keep_archive=True), Daemon({IMAGE: SEED_ID}))
    assert kept["_rc"] == 0 and not kept["changed"] and archive(tmp_path).exists()
    daemon = Daemon({IMAGE: SEED_ID})
    out = run(args, daemon)
    assert out["_rc"] == 0 and out["changed"] and not out["loaded"] and daemon.commands == ["inspect"]
    assert os.listdir(tmp_path) == []  # the archive, its manifest and the stamp


def test_an_archive_that_is_not_the_seeds_is_never_loaded(tmp_path, run):
    manifest = saved_on(tmp_path, run)
    archive(tmp_path).write_bytes(b"x" * len(TAR))
    daemon = Daemon()
    out = run({"state": "loaded", "dir": str(tmp_path), "manifest": manifest, "image_id": SEED_ID}, daemon)
    assert out["_rc"] == 1 and daemon.commands == ["inspect"]
    assert out["msg"].startswith("Host gpu01: the image archive %s is not the seed's (sha256 " % archive(tmp_path))
    assert out["msg"].endswith("); nothing was loaded")


def test_a_loaded_image_with_another_id_fails_naming_both_and_keeps_the_archive(tmp_path, run):
    manifest = saved_on(tmp_path, run)
    out = run({"state": "loaded", "dir": str(tmp_path), "manifest": manifest, "image_id": SEED_ID},
              Daemon(loads_as=OTHER_ID))
    assert out["_rc"] == 1 and out["msg"] == (
        "Host gpu01: after docker load, %s is image %s but the seed's is %s; the archive is kept at %s for "
        "inspection" % (IMAGE, OTHER_ID, SEED_ID, archive(tmp_path)))
    assert archive(tmp_path).exists()


def test_a_failed_load_names_the_daemon_error(tmp_path, run):
    manifest = saved_on(tmp_path, run)
    out = run({"state": "loaded", "dir": str(tmp_path), "manifest": manifest, "image_id": SEED_ID},
              Daemon(load_fails=True))
    assert out["_rc"] == 1 and out["msg"] == ("Host gpu01: docker load of %s failed: Error processing tar file: "
                                              "unexpected EOF" % archive(tmp_path))


def test_check_mode_loads_and_removes_nothing(tmp_path, run):
    manifest = saved_on(tmp_path, run)
    daemon = Daemon()
    out = run({"state": "loaded", "dir": str(tmp_path), "manifest": manifest, "image_id": SEED_ID}, daemon,
              check_mode=True)
    assert out["_rc"] == 0 and out["changed"] and out["loaded"] and daemon.commands == ["inspect"]
    assert archive(tmp_path).exists()
    out = run({"state": "loaded", "dir": str(tmp_path / "none"), "manifest": None, "image_id": ""}, Daemon(),
              check_mode=True)
    assert out["_rc"] == 0 and out["changed"] and out["loaded"]
