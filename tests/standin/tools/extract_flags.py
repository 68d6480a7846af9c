"""Extract SGLang's launch_server flag table from a released wheel (stdlib only).

The stand-in server must accept exactly the flags the real one accepts, so that
argparse's prefix matching (`--tp` -> `--tp-size`) and its "unrecognized
arguments" error behave the same. Rather than hand-copying 300 flags, this reads
`sglang/srt/server_args.py` with `ast` and writes the table the stand-in loads:

    pip download sglang==0.5.7 --no-deps -d /tmp/w
    python3 tests/standin/tools/extract_flags.py /tmp/w/sglang-0.5.7-py3-none-any.whl \
        > tests/standin/server/standin_server/sglang_flags.json
"""

import ast
import json
import sys
import zipfile

SERVER_ARGS = "sglang/srt/server_args.py"
# Custom `type=` callables in server_args.py, mapped to names the stand-in knows.
TYPE_NAMES = {"str": "str", "int": "int", "float": "float", "json.loads": "json",
              "json_list_type": "json_list", "nullable_str": "nullable_str"}


def literal(node, names):
    """Evaluate a node made of literals and already-known module constants."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = literal(node.left, names), literal(node.right, names)
        if isinstance(left, list) and isinstance(right, list):
            return left + right
    raise ValueError(ast.unparse(node))


def module_constants(tree):
    names = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = literal(node.value, names)
            except ValueError:
                pass
    return names


def dataclass_fields(tree, names):
    """ServerArgs fields in declaration order; unknown defaults become None."""
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ServerArgs")
    fields = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = None
            if node.value is not None:
                try:
                    value = literal(node.value, names)
                except ValueError:
                    src = ast.unparse(node.value)
                    value = [] if "default_factory=list" in src else \
                        {} if "default_factory=dict" in src else None
            fields[node.target.id] = value
    return fields


def flags(tree, names, fields):
    out = []
    # ast.walk is breadth-first, but all these calls sit at one depth of one function: source order.
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"):
            continue
        entry = {"flags": [a.value for a in node.args]}
        for kw in node.keywords:
            src = ast.unparse(kw.value)
            if kw.arg == "help":
                continue
            if kw.arg == "type":
                entry["type"] = TYPE_NAMES.get(src, "str")
            elif kw.arg == "action":
                # A custom Action class (LoRAPathAction) only reshapes values: plain "store".
                entry["action"] = kw.value.value if isinstance(kw.value, ast.Constant) else "store"
            elif kw.arg == "default" and src.startswith("ServerArgs."):
                entry["default"] = fields.get(src.split(".", 1)[1])
            else:
                try:
                    entry[kw.arg] = literal(kw.value, names)
                except ValueError:
                    pass  # choices computed at import time (parsers registries): accept any value
        out.append(entry)
    return out


def jsonable(value):
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(type(value).__name__)


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    path = argv[1]
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as whl:
            source = whl.read(SERVER_ARGS).decode()
            version = next((n.split("/")[0][len("sglang-"):-len(".dist-info")]
                            for n in whl.namelist() if n.endswith(".dist-info/METADATA")), None)
    else:
        source, version = open(path).read(), None
    tree = ast.parse(source)
    names = module_constants(tree)
    fields = dataclass_fields(tree, names)
    table = {"sglang_version": version, "fields": fields, "arguments": flags(tree, names, fields)}
    json.dump(table, sys.stdout, indent=1, default=jsonable)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
