"""The code's layout, checked from the files. The layering: mnist_core is the ML library and never imports
Gradio or the app; mnist_web imports the core (each import check runs in a fresh interpreter, so a module
imported by another test cannot hide a leak). Issue 30: no import cycle in either package (function-level
imports included: one of those is still a cycle), no CSS in the app's Python strings (it lives in
mnist_web/web/*.css), small functions in the app, every module saying what it holds.
README/docs links: tests/test_docs.py."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORE = ROOT / "mnist_core"
APP = ROOT / "mnist_web"


def core_modules() -> list[str]:
    return sorted(f"mnist_core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__main__")


def imported_names(path) -> set[str]:
    """Every absolute module name an import statement of this file names (at any depth)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_importing_every_core_module_leaves_gradio_out():
    mods = core_modules()
    assert len(mods) >= 15 and "mnist_core.train" in mods and "mnist_core.cli" in mods
    code = ("import importlib, json, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in ('gradio', 'mnist_web'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_no_core_file_imports_the_app_or_a_web_framework():
    banned = ("gradio", "gradio_client", "mnist_web", "fastapi", "starlette", "pandas")
    offenders = {p.name: sorted(n for n in imported_names(p) if n.split(".")[0] in banned)
                 for p in CORE.glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_app_package_holds_the_web_parts_and_uses_the_core():
    assert (APP / "web" / "sketch.js").is_file() and not (CORE / "web").exists()
    for name in ("handlers", "components", "webguard", "views"):
        assert (APP / f"{name}.py").is_file() and not (CORE / f"{name}.py").exists()
    assert any(n.startswith("mnist_core") for n in imported_names(APP / "handlers.py"))


PACKAGES = ("mnist_core", "mnist_web")
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported(name: str, path: Path) -> set[str]:
    """Every module of ours that `name` imports anywhere in its file (top level or inside a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {d for d in imported(m, p) if d in mods and d != m} for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle or a knot of them."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_either_package():
    assert cycles(graph()) == []


CSS_RULE = re.compile(r"[\w\-\]\)#.*>]\s*\{\s*[a-z\-]+\s*:[^{}]*;?\s*\}")   # "sel {prop: value}"
STATIC_STYLE = re.compile(r"\bstyle\s*=\s*['\"](?!\s*--)")     # style='...' other than custom properties


def string_pieces(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_css_finder_finds_planted_css():
    assert CSS_RULE.search(".bar > div {background: red; height: 100%}")
    assert STATIC_STYLE.search("<div style='width:3px'>") and not STATIC_STYLE.search("<div style='--p:3%'>")
    assert not CSS_RULE.search("{'a': 1}") and not CSS_RULE.search("f(x) {x}")


@pytest.mark.parametrize("name", [m for m in modules() if m.startswith("mnist_web")])
def test_no_css_in_the_apps_python_strings(name):
    """The app's CSS lives in mnist_web/web/*.css; Python may set a per-value custom property
    (style='--p:42%') that a rule there uses, nothing else."""
    path = modules()[name]
    found = [(line, text[:80]) for line, text in string_pieces(path)
             if CSS_RULE.search(text) or STATIC_STYLE.search(text)]
    docstrings = {n.body[0].value.lineno for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    assert [f for f in found if f[0] not in docstrings] == []


def long_functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    sizes = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return [(name, lines) for name, lines in sizes if lines > MAX_FUNCTION_LINES]


def test_the_apps_functions_are_small():
    paths = [ROOT / "demo.py", *(p for m, p in modules().items() if m.startswith("mnist_web"))]
    long = {str(p.relative_to(ROOT)): f for p in paths if (f := long_functions(p))}
    assert long == {}


def test_every_module_says_what_it_holds():
    for name, path in modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and len(doc) > 20, f"{name} has no opening docstring"


def test_the_package_map_lists_every_module_of_the_app():
    doc = ast.get_docstring(ast.parse((ROOT / "mnist_web" / "__init__.py").read_text(encoding="utf-8")))
    for name in modules():
        if name.startswith("mnist_web.") and name.count(".") == 1:
            assert re.search(rf"\b{name.split('.')[1]}\b", doc), f"mnist_web/__init__.py does not list {name}"
