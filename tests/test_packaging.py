"""pyproject.toml: the installed project (make test installs it with `pip install -e .`), its one list of
dependencies (requirements.txt) and its two console scripts."""
from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import mnist_core
from tests.conftest import ROOT, need

try:
    import tomllib
except ImportError:                     # Python 3.10
    tomllib = pytest.importorskip("tomli")

DIST = "mnist-draw"


def installed() -> md.Distribution:
    try:
        dist = md.distribution(DIST)
    except md.PackageNotFoundError:
        need(False, f"{DIST} is not installed in this environment (make test runs pip install -e .)")
    return dist


def requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_the_project_reads_its_dependencies_from_requirements_txt():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert "dependencies" not in meta["project"] and "dependencies" in meta["project"]["dynamic"]
    assert {"mnist-core", "mnist-demo"} <= set(meta["project"]["scripts"])


def test_the_installed_metadata_is_requirements_txt_and_the_package_version():
    dist = installed()
    assert dist.version == mnist_core.__version__
    runtime = sorted(str(Requirement(r)) for r in dist.requires or [] if "extra ==" not in r)
    assert runtime == sorted(str(Requirement(r)) for r in requirement_lines("requirements.txt"))
    assert {"dev", "onnx"} <= set(dist.metadata.get_all("Provides-Extra") or [])


@pytest.mark.parametrize("script,expect", [("mnist-core", "{train,evaluate,predict,export,finetune}"),
                                           ("mnist-demo", "--no-train")])
def test_console_scripts_run(script, expect):
    installed()
    exe = Path(sys.prefix) / "bin" / script
    assert exe.is_file(), f"{exe} missing: pip install -e . installs it"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=180, cwd="/")
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout
