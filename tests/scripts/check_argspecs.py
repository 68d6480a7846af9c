#!/usr/bin/env python3
"""Gate: every role's meta/argument_specs.yml and defaults/main.yml name the same variables.

argument_specs is the single source of variable documentation; a variable defaulted but not
documented (or documented but never defaulted) is a defect. Variables whose name starts with
an underscore are internal and exempt. Defaults must also match where the spec states one.
Exit status 1 lists every mismatch, role by role.
"""
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def check_role(role_dir):
    problems = []
    defaults_file = role_dir / "defaults" / "main.yml"
    specs_file = role_dir / "meta" / "argument_specs.yml"
    if not specs_file.exists():
        return ["%s: meta/argument_specs.yml is missing" % role_dir.name]
    specs = load(specs_file).get("argument_specs", {})
    options = (specs.get("main") or {}).get("options") or {}
    defaults = load(defaults_file) if defaults_file.exists() else {}
    public_defaults = {k: v for k, v in defaults.items() if not k.startswith("_")}
    for name in sorted(set(public_defaults) - set(options)):
        problems.append("%s: %s is defaulted in defaults/main.yml but not documented in "
                        "meta/argument_specs.yml (add it under argument_specs.main.options)" % (role_dir.name, name))
    for name in sorted(set(options) - set(public_defaults)):
        if options[name].get("required"):
            continue
        problems.append("%s: %s is documented in meta/argument_specs.yml but has no default in "
                        "defaults/main.yml (add a default or mark it required: true)" % (role_dir.name, name))
    for name in sorted(set(options) & set(public_defaults)):
        spec = options[name]
        if "default" in spec and spec["default"] != public_defaults[name]:
            problems.append("%s: %s defaults to %r in defaults/main.yml but argument_specs says %r"
                            % (role_dir.name, name, public_defaults[name], spec["default"]))
    return problems


def main():
    roles = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
    problems = [problem for role in roles for problem in check_role(role)]
    for problem in problems:
        print("argument_specs mismatch: " + problem)
    print("checked %d roles: %s" % (len(roles), "FAILED" if problems else "argument_specs and defaults agree"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
