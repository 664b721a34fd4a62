"""Mutation testing of mnist_core: does the fast test suite notice when the code is subtly wrong?

    nice -n 19 python benchmarks/mutation.py                      # the six modules of issue 17
    nice -n 19 python benchmarks/mutation.py --modules predict --jobs 2 --show-survivors

Each mutant is one small AST change to one module (a comparison flipped, an operator swapped, a
number or short string changed, and/or swapped, a `not` dropped, a call statement deleted, a return
value replaced by None). The tree is copied to a scratch folder first (default: a new folder under
/tmp); the working tree is never written to. Every mutant runs the module's chosen fast tests there
(non-browser, no real MNIST) with `pytest -x`, in a process forked from one that has already imported
torch, numpy and pytest, so a mutant costs only its tests. A mutant is "killed" when a test fails (or
the run exceeds the timeout), "survived" when all pass. Lines the chosen tests never execute (traced
once, before mutating) are reported as "not run": on a CPU machine these are the CUDA-only paths.

Self-written rather than mutmut/cosmic-ray: mutmut 3 mutates only inside functions (so not a
module-level constant such as predict.UNSURE_BELOW, one of the bugs this should catch) and rewrites the
package into a mutants/ folder with trampolines; cosmic-ray needs a session database and a config per
run. This file needs nothing beyond the dev requirements and prints its figures directly.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> fast test files that exercise it, most direct first (pytest -x stops at the first failure)
TESTS = {
    "evaluate": ["test_evaluate.py", "test_train.py"],
    "batches": ["test_batches.py", "test_train.py", "test_defaults.py"],
    "registry": ["test_registry.py"],
    "predict": ["test_predict.py", "test_registry.py"],
    "checkpoint": ["test_checkpoint.py", "test_registry.py", "test_train.py"],
    "train": ["test_train.py", "test_defaults.py"],
}
DEFAULT_MODULES = list(TESTS)

CMP_SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
            ast.GtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
CMP_SWAP2 = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}
BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
            ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr}


@dataclass
class Mutant:
    module: str
    index: int          # position in the module's list
    line: int
    what: str
    source: str         # the whole mutated module
    lines: range = range(0)   # the lines of the statement (or compound statement's header) holding it


def _statement_lines(tree: ast.AST) -> dict[int, range]:
    """id(node) -> lines of its innermost enclosing statement; a compound statement counts by its header."""
    out: dict[int, range] = {}

    def visit(node, span):
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            end = (body[0].lineno - 1 if body and isinstance(body, list) and isinstance(body[0], ast.stmt)
                   else node.end_lineno)
            span = range(node.lineno, max(node.lineno, end) + 1)
        out[id(node)] = span
        for child in ast.iter_child_nodes(node):
            visit(child, span)

    visit(tree, range(0))
    return out


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                ids.add(id(first.value))
    return ids


def _in_fstring_ids(tree: ast.AST) -> set[int]:
    return {id(n) for f in ast.walk(tree) if isinstance(f, ast.JoinedStr) for n in ast.walk(f)}


def _annotation_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        anns = []
        if isinstance(node, ast.AnnAssign) or (isinstance(node, ast.arg) and node.annotation is not None):
            anns.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            anns.append(node.returns)
        for a in anns:
            ids.update(id(n) for n in ast.walk(a))
    return ids


def _mutations(node: ast.AST, skip: set[int]):
    """(description, function that changes the node in place) for one node."""
    if id(node) in skip:
        return
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for table in (CMP_SWAP, CMP_SWAP2):
                if type(op) in table:
                    new = table[type(op)]
                    yield (f"{type(op).__name__} -> {new.__name__}",
                           lambda n, i=i, new=new: n.ops.__setitem__(i, new()))
    elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BIN_SWAP:
        new = BIN_SWAP[type(node.op)]
        yield f"{type(node.op).__name__} -> {new.__name__}", lambda n, new=new: setattr(n, "op", new())
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield f"{type(node.op).__name__} -> {new.__name__}", lambda n, new=new: setattr(n, "op", new())
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield f"drop {type(node.op).__name__}", "unwrap"
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            yield f"{v} -> {not v}", lambda n: setattr(n, "value", not n.value)
        elif isinstance(v, int):
            yield f"{v} -> {v + 1}", lambda n: setattr(n, "value", n.value + 1)
        elif isinstance(v, float):
            new = v * 2 if v else 1.0
            yield f"{v} -> {new}", lambda n, new=new: setattr(n, "value", new)
        elif isinstance(v, str) and 0 < len(v) <= 24 and " " not in v:
            yield f"{v!r} -> 'XX{v}XX'", lambda n: setattr(n, "value", f"XX{n.value}XX")
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield f"delete call `{ast.unparse(node)[:50]}`", "delete"
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        yield "return None", lambda n: setattr(n, "value", ast.Constant(None))


def _apply(tree: ast.AST, target_index: int, action) -> ast.AST:
    """A copy of tree with the node at walk position target_index changed."""
    new = copy.deepcopy(tree)
    nodes = list(ast.walk(new))
    node = nodes[target_index]
    if action == "unwrap" or action == "delete":
        replacement = node.operand if action == "unwrap" else ast.Pass()
        for parent in ast.walk(new):
            for field, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, field, replacement)
                elif isinstance(value, list):
                    for i, v in enumerate(value):
                        if v is node:
                            value[i] = replacement
    else:
        action(node)
    return ast.fix_missing_locations(new)


def make_mutants(module: str, path: Path) -> list[Mutant]:
    src = path.read_text()
    tree = ast.parse(src)
    skip = _docstring_ids(tree) | _in_fstring_ids(tree) | _annotation_ids(tree)
    # `from __future__ import annotations` and friends: never mutate imports
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip.update(id(n) for n in ast.walk(node))
    spans = _statement_lines(tree)
    out = []
    for idx, node in enumerate(ast.walk(tree)):
        for what, action in _mutations(node, skip):
            mutated = ast.unparse(_apply(tree, idx, action))
            try:
                compile(mutated, str(path), "exec")
            except SyntaxError:
                continue
            out.append(Mutant(module, len(out), getattr(node, "lineno", 0), what, mutated, spans[id(node)]))
    return out


def copy_tree(src: Path, dst: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "runs", "data", "artifacts", ".pytest_cache")
    shutil.copytree(src, dst, ignore=ignore)
    return dst


def _die_with_parent() -> None:
    """Linux: a forked child is killed when its parent dies (an interrupted run leaves nothing running)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_pytest(workdir: Path, tests: list[str], timeout: float, trace_file: Path | None = None,
                retry: bool = True) -> tuple[str, float]:
    """Fork; in the child run pytest in workdir. Returns ("passed" | "failed" | "timeout", seconds).

    A timeout is retried once with three times the limit: on shared cores a slow run is usually load,
    not a mutant that loops, and counting it as killed would inflate the score."""
    if retry:
        status, secs = _run_pytest(workdir, tests, timeout, trace_file, retry=False)
        if status == "timeout":
            return _run_pytest(workdir, tests, 3 * timeout, trace_file, retry=False)
        return status, secs
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        try:
            _die_with_parent()
            os.chdir(workdir)
            sys.path.insert(0, str(workdir))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest
            lines: set[tuple[str, int]] = set()
            if trace_file is not None:
                pkg = str(workdir / "mnist_core")

                def tracer(frame, event, arg):
                    if frame.f_code.co_filename.startswith(pkg):
                        lines.add((Path(frame.f_code.co_filename).stem, frame.f_lineno))
                        return tracer
                    return None

                sys.settrace(tracer)
                import threading
                threading.settrace(tracer)
            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                                *[f"tests/{t}" for t in tests]])
            if trace_file is not None:
                sys.settrace(None)
                trace_file.write_text("\n".join(f"{m} {n}" for m, n in sorted(lines)))
            os._exit(0 if code == 0 else 1)
        except BaseException:
            os._exit(3)
    deadline = t0 + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("passed" if code == 0 else "failed"), time.monotonic() - t0
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - t0
        time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", nargs="+", default=DEFAULT_MODULES, choices=sorted(TESTS))
    ap.add_argument("--workdir", default=None, help="scratch folder for the copy (default: a new /tmp folder)")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once (each in its own copy of the tree)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many mutants per module (0: all)")
    ap.add_argument("--show-survivors", action="store_true", help="print each survivor's line")
    ap.add_argument("--out", default=None, help="also write the per-mutant results here (TSV)")
    ap.add_argument("--root", default=str(ROOT), help="the tree to copy (default: this repository)")
    ap.add_argument("--retest", default=None,
                    help="a TSV from --out: run only the mutants that survived there (after adding tests); "
                         "the others are counted as killed as they were")
    a = ap.parse_args()
    previous: dict[str, list[tuple[int, str, str]]] = {}
    if a.retest:
        for row in Path(a.retest).read_text().splitlines()[1:]:
            mod, line, what, outcome, _ = row.split("\t")
            previous.setdefault(mod, []).append((int(line), what, outcome))

    sys.dont_write_bytecode = True      # a mutated module must never be read back from a stale .pyc
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    os.environ.pop("CI", None)          # real-MNIST tests are not selected; keep their fixtures skipping
    base = Path(a.workdir or tempfile.mkdtemp(prefix="mnist-mutation-"))
    src = Path(a.root).resolve()
    if base.resolve().is_relative_to(ROOT) or base.resolve().is_relative_to(src):
        sys.exit("the scratch folder must be outside the repository")
    base.mkdir(parents=True, exist_ok=True)
    trees = [copy_tree(src, base / f"tree{j}") for j in range(a.jobs)]
    print(f"copies of {src} in {base}", flush=True)

    import numpy  # noqa: F401  (heavy imports once, in the parent, before any fork)
    import PIL.Image  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401

    results, rows = {}, []
    for module in a.modules:
        rel = Path("mnist_core") / f"{module}.py"
        original = (trees[0] / rel).read_text()
        tests = TESTS[module]
        trace = base / f"trace-{module}.txt"
        status, secs = _run_pytest(trees[0], tests, timeout=900, trace_file=trace)
        if status != "passed":
            print(f"{module}: the unmutated tests do not pass ({status}); skipped", flush=True)
            continue
        covered = {int(entry.split()[1]) for entry in trace.read_text().splitlines() if entry.split()[0] == module}
        _, base_secs = _run_pytest(trees[0], tests, timeout=900)
        timeout = max(60.0, 4 * base_secs)
        mutants = make_mutants(module, trees[0] / rel)
        if a.limit:
            mutants = mutants[: a.limit]
        carried = 0
        if a.retest:
            if module not in previous:
                print(f"{module}: not in {a.retest}; skipped", flush=True)
                continue
            again = {(line, what) for line, what, outcome in previous[module] if outcome == "passed"}
            carried = sum(outcome in ("failed", "timeout") for _, _, outcome in previous[module])
            mutants = [m for m in mutants if (m.line, m.what) in again]
        retest_note = f" to retest ({carried} killed before)" if a.retest else ""
        print(f"{module}: {len(mutants)} mutants{retest_note}, tests {' '.join(tests)} take {base_secs:.1f}s "
              f"(timeout {timeout:.0f}s)", flush=True)
        counts = {"killed": carried, "survived": 0, "not run": 0}
        if a.retest:
            counts["not run"] = sum(o == "not run" for _, _, o in previous[module])
        survivors = []
        pending = list(mutants)
        # one mutant per copy of the tree at a time; a batch of `jobs` mutants runs concurrently
        while pending:
            batch = [pending.pop(0) for _ in range(min(len(trees), len(pending)))]
            outcomes = []
            if len(batch) == 1:
                m = batch[0]
                if not covered.intersection(m.lines):
                    outcomes.append((m, "not run", 0.0))
                else:
                    (trees[0] / rel).write_text(m.source)
                    outcomes.append((m, *_run_pytest(trees[0], tests, timeout)))
            else:
                # run the batch concurrently: fork one watcher per tree
                pids = {}
                for j, m in enumerate(batch):
                    if not covered.intersection(m.lines):
                        outcomes.append((m, "not run", 0.0))
                        continue
                    (trees[j] / rel).write_text(m.source)
                    r, w = os.pipe()
                    pid = os.fork()
                    if pid == 0:
                        _die_with_parent()
                        os.close(r)
                        st, sec = _run_pytest(trees[j], tests, timeout)
                        os.write(w, f"{st}|{sec}".encode())
                        os._exit(0)
                    os.close(w)
                    pids[pid] = (m, r)
                for pid, (m, r) in pids.items():
                    os.waitpid(pid, 0)
                    st, sec = os.read(r, 100).decode().split("|")
                    os.close(r)
                    outcomes.append((m, st, float(sec)))
            done = len(mutants) - len(pending)
            if done % 20 < len(batch):
                print(f"  {done}/{len(mutants)} run", flush=True)
            for m, st, sec in outcomes:
                kind = "killed" if st in ("failed", "timeout") else ("not run" if st == "not run" else "survived")
                counts[kind] += 1
                rows.append(f"{module}\t{m.line}\t{m.what}\t{st}\t{sec:.1f}")
                if kind == "survived":
                    survivors.append(m)
                    if a.show_survivors:
                        print(f"  survived  {module}.py:{m.line}  {m.what}", flush=True)
        for t in trees:
            (t / rel).write_text(original)
        run_total = counts["killed"] + counts["survived"]
        score = 100.0 * counts["killed"] / run_total if run_total else float("nan")
        results[module] = (counts, score)
        print(f"{module}: killed {counts['killed']}/{run_total} = {score:.1f}% "
              f"({counts['survived']} survived, {counts['not run']} on lines the fast tests do not run)", flush=True)
    print("\nmodule       mutants  killed  survived  not run  score")
    for module, (c, score) in results.items():
        print(f"{module:<12} {sum(c.values()):>7}  {c['killed']:>6}  {c['survived']:>8}  {c['not run']:>7}  "
              f"{score:5.1f}%")
    if a.out:
        Path(a.out).write_text("module\tline\tmutation\toutcome\tseconds\n" + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
