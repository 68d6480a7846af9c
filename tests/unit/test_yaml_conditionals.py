"""Every conditional in the collection's and the scenarios' YAML is a string.

A plain YAML scalar holding ': ' (``- x is search('a: b')``) parses as a mapping, not as the
expression it reads as; Ansible then fails the task with "Conditional expressions must be
strings" only when it runs, which for a molecule verify task is 15 minutes into a scenario, and
ansible-lint does not flag it. Fold such lines (``- >-``) instead.
"""
import glob
import os

import pytest
import yaml

TOP = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
KEYS = ("that", "when", "failed_when", "changed_when", "until")
FILES = sorted(set(
    f for pattern in ("playbooks/*.yml", "roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "molecule/*/*.yml")
    for f in glob.glob(os.path.join(TOP, pattern))))


def conditionals(node, where=""):
    """(where, key, item) for every item of every conditional key under node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in KEYS:
                for item in value if isinstance(value, list) else [value]:
                    yield where, key, item
            yield from conditionals(value, "%s/%s" % (where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from conditionals(value, "%s[%d]" % (where, index))


def test_there_are_files_to_check():
    assert len(FILES) > 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, TOP))
def test_every_conditional_is_a_string(path):
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    broken = ["%s %s: %r" % (where, key, item) for where, key, item in conditionals(data)
              if not isinstance(item, (str, bool))]
    assert not broken, "fold these with '- >-' (a ': ' made them mappings): %s" % broken
