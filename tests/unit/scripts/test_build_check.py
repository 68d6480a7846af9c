"""tests/scripts/build_check.sh, the build gate, against a copy of this checkout: what `make demo`
leaves behind is not in the collection tarball, and any file git does not track fails the gate."""

import os
import shutil
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """The tracked files of this working tree (edits included), committed in a new repository."""
    if shutil.which("ansible-galaxy", path=BIN) is None:
        pytest.fail("ansible-galaxy is not next to %s: run make venv" % sys.executable)
    copy = tmp_path_factory.mktemp("checkout")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=TOP, check=True, capture_output=True).stdout
    for name in tracked.decode().split("\0"):
        if name and os.path.isfile(os.path.join(TOP, name)):
            os.makedirs(copy / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(TOP, name), copy / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(copy)]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run(git + step, check=True)
    return copy


def build_gate(copy):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(["bash", str(copy / "tests/scripts/build_check.sh")], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_what_the_demo_leaves_is_not_in_the_tarball(checkout):
    report = checkout / "sglang-results" / "demo-20261203T000000Z"
    report.mkdir(parents=True)
    (report / "fleet_report.json").write_text("{}\n")
    try:
        result = build_gate(checkout)
    finally:
        shutil.rmtree(checkout / "sglang-results")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all tracked" in result.stdout


def test_an_untracked_file_fails_the_build_gate(checkout):
    stray = checkout / "roles" / "notes.txt"
    stray.write_text("scratch\n")
    try:
        result = build_gate(checkout)
    finally:
        stray.unlink()
    assert result.returncode != 0
    assert "roles/notes.txt" in result.stderr and "git does not track" in result.stderr
