"""The import rule of py/loom_py's three wings, checked on every module's source (imports inside functions
included, since Loom keeps heavy imports local):

* ``stats`` imports no verb, and from ``runtime`` only ``runtime.errors`` (the exception vocabulary, a leaf);
* ``runtime`` imports no verb (the bridge reaches a verb's ``prepare`` only through its "module:fn" string);
* a verb imports another verb only by public names, never a leading-underscore module or name;
* nothing lives outside the wings but the package's ``__init__``.

The checker is pure (module name + source → violations) and is tested on a table of cases first."""
import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(__file__), "..", "loom_py")
WINGS = ("runtime", "stats", "verbs")


def _absolute(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, source: str, is_pkg: bool = False) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement in ``source``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(module, is_pkg, node)
            out += [(mod, a.name) for a in node.names]
    return out


def _verb_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["loom_py", "verbs"] else None


def violations(module: str, source: str, is_pkg: bool = False) -> list[str]:
    wing = module.split(".")[1] if module.count(".") >= 1 else None
    bad = []
    for mod, name in imports_of(module, source, is_pkg):
        if not (mod == "loom_py" or mod.startswith("loom_py.")):
            continue
        full = f"{mod}.{name}" if name and mod in ("loom_py", "loom_py.runtime", "loom_py.stats", "loom_py.verbs") else mod
        parts = full.split(".")
        target_wing = parts[1] if len(parts) > 1 else None
        if target_wing not in WINGS:
            bad.append(f"{module}: imports {full}, which is in no wing")
            continue
        if wing == "stats" and target_wing == "verbs":
            bad.append(f"{module}: stats imports the verb {full}")
        if wing == "stats" and target_wing == "runtime" and full != "loom_py.runtime.errors":
            bad.append(f"{module}: stats imports {full} from runtime (only runtime.errors is allowed)")
        if wing == "runtime" and target_wing == "verbs":
            bad.append(f"{module}: runtime imports the verb {full}")
        if wing == "verbs" and target_wing == "verbs":
            here, there = _verb_of(module), _verb_of(full)
            if there and there != here:
                private = [p for p in parts[2:] if p.startswith("_") and p != "__init__"]
                if private or (name and name.startswith("_") and full == mod):
                    bad.append(f"{module}: imports a private name of the verb {there} ({full}{'.' + name if name and full == mod else ''})")
    return bad


CASES = [
    ("loom_py.stats.leakage", "from loom_py.runtime.errors import UsageError", False),
    ("loom_py.stats.leakage", "def f():\n    from loom_py.runtime.flowkit import json_safe", True),
    ("loom_py.stats.leakage", "from loom_py.verbs import eda", True),
    ("loom_py.stats.leakage", "from ..verbs.eda import profile", True),
    ("loom_py.stats.leakage", "from . import tabular", False),
    ("loom_py.stats.leakage", "import loom_py.runtime.data", True),
    ("loom_py.runtime.bridge", "from loom_py.verbs.eda import prepare", True),
    ("loom_py.runtime.bridge", "from loom_py.stats import tabular", False),
    ("loom_py.verbs.features", "from loom_py.verbs.eda import check_target_column", False),
    ("loom_py.verbs.features", "from loom_py.verbs.eda import _sample", True),
    ("loom_py.verbs.viz", "def f():\n    from ..eda import _assoc", True),
    ("loom_py.verbs.validate", "from loom_py.verbs.optimize._private import x", True),
    ("loom_py.verbs.optimize.flowside", "from loom_py.verbs.optimize.scoring import _key", False),
    ("loom_py.verbs.optimize.flowside", "from .scoring import _key", False),
    ("loom_py.verbs.eda", "from loom_py import leakage", True),
    ("loom_py.verbs.eda", "from loom_py.stats.leakage import cramers_v_corrected", False),
]


@pytest.mark.parametrize("module,source,flagged", CASES)
def test_the_checker_flags_exactly_the_forbidden_imports(module, source, flagged):
    assert bool(violations(module, source)) is flagged, violations(module, source)


def _modules():
    root = os.path.abspath(PKG)
    for dp, _dn, fn in os.walk(root):
        if "__pycache__" in dp:
            continue
        for f in sorted(fn):
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dp, f), os.path.dirname(root))[:-3].split(os.sep)
                is_pkg = rel[-1] == "__init__"
                name = ".".join(rel[:-1] if is_pkg else rel)
                yield name, os.path.join(dp, f), is_pkg


def test_every_module_lives_in_a_wing():
    stray = [n for n, _p, _k in _modules() if n != "loom_py" and n.split(".")[1] not in WINGS]
    assert stray == []
    assert sorted(d for d in os.listdir(PKG) if not d.startswith("_") and os.path.isdir(os.path.join(PKG, d))) == list(WINGS)


def test_the_tree_keeps_the_import_rule():
    bad = []
    for name, path, is_pkg in _modules():
        with open(path) as f:
            bad += violations(name, f.read(), is_pkg)
    assert bad == []
