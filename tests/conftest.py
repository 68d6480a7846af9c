"""Make the collection importable as ansible_collections.sglang_rocm.fleet for unit tests.

The Makefile links .build/ansible_collections/sglang_rocm/fleet to the repository root;
this file does the same when pytest is run directly, so `pytest tests/unit` just works.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, ".build")
LINK = os.path.join(BUILD, "ansible_collections", "sglang_rocm", "fleet")

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(ROOT, LINK)
    except FileExistsError:
        pass
if BUILD not in sys.path:
    sys.path.insert(0, BUILD)
TESTS = os.path.join(ROOT, "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
