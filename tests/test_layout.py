"""The layering: mnist_core is the ML library and never imports Gradio or the app; mnist_web imports the
core. Each check runs in a fresh interpreter, so a module imported by another test cannot hide a leak."""
from __future__ import annotations

import ast
import json
import subprocess
import sys

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
