"""The fleet reports are built on the controller: no module that runs on a host may import them.

Ansible ships every module_util a module imports (transitively) with the module, so a host
module importing the report code would carry the renderers to every GPU host.
"""
import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
PREFIX = "ansible_collections.sglang_rocm.fleet.plugins.module_utils"
CONTROLLER_ONLY = {"_render", "_report_bench", "_report_preflight", "_validate"}


def module_utils_imported(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            rest = node.module[len(PREFIX):].lstrip(".")
            names.update([rest.split(".")[0]] if rest else [alias.name for alias in node.names])
    return names


def shipped_with(path):
    seen, todo = set(), list(module_utils_imported(path))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(module_utils_imported(PLUGINS / "module_utils" / (name + ".py")))
    return seen


def test_host_modules_do_not_ship_the_report_code():
    modules = [p for p in sorted((PLUGINS / "modules").glob("*.py")) if "def main(" in p.read_text()]
    assert {p.stem for p in modules} >= {"sglang_bench", "rocm_preflight"}
    shipped = {p.stem: sorted(shipped_with(p) & CONTROLLER_ONLY) for p in modules}
    assert shipped == {p.stem: [] for p in modules}


def test_the_report_actions_do_use_them():
    for action, model in (("bench_report", "_report_bench"), ("preflight_summary", "_report_preflight")):
        assert {model, "_render"} <= shipped_with(PLUGINS / "action" / (action + ".py"))
