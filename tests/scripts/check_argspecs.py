"""Gate: every role's meta/argument_specs.yml and defaults/main.yml name the same variables,
and every variable a role defines carries the collection's prefix.

argument_specs is the single source of variable documentation; a variable defaulted but not
documented (or documented but never defaulted) is a defect. Variables whose name starts with
an underscore are internal and exempt from documentation. Defaults must also match where the
spec states one.

Prefixes (ansible-lint's var-naming[no-role-prefix] only knows "<role>_", so this gate enforces
ours instead): role X defines public variables "sglang_X_*", computed facts "_sglang_X_*" and
registered results "__sglang_X_*"; the common role defines the shared "sglang_*" variables.
Exit status 1 lists every problem, role by role.
"""
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def role_prefix(role_name):
    return "sglang_" if role_name == "common" else "sglang_%s_" % role_name


def defined_names(task_files):
    """Yield (file, name) for every set_fact key and register target in task files."""
    for path in task_files:
        for task in _walk_tasks(load(path) or []):
            if "register" in task:
                yield path, task["register"]
            for key in ("ansible.builtin.set_fact", "set_fact"):
                if isinstance(task.get(key), dict):
                    for name in task[key]:
                        # a templated name ("{{ item.key }}") sets variables the role does not own
                        if name != "cacheable" and "{{" not in name:
                            yield path, name


def _walk_tasks(tasks):
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        yield task
        for nested in ("block", "rescue", "always"):
            yield from _walk_tasks(task.get(nested))


def check_prefixes(role_dir, names):
    prefix = role_prefix(role_dir.name)
    problems = []
    for where, name in names:
        if not name.lstrip("_").startswith(prefix):
            problems.append("%s: %s (%s) does not start with %s, _%s or __%s"
                            % (role_dir.name, name, where, prefix, prefix, prefix))
    return problems


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
    task_files = sorted((role_dir / "tasks").glob("*.yml")) + sorted((role_dir / "handlers").glob("*.yml"))
    names = [("defaults/main.yml", n) for n in defaults] + [("argument_specs", n) for n in options]
    names += [(str(path.relative_to(role_dir)), n) for path, n in defined_names(task_files)]
    problems.extend(check_prefixes(role_dir, names))
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
