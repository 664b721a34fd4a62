"""Which saved runs go when the runs folder is over its bounds: a pure policy, so nobody's work is lost
to somebody else's.

- Each owner keeps their newest `per_owner` runs: when an owner saves one more, their own oldest go.
- The folder keeps at most `max_runs` runs and `max_bytes` bytes in all: past that, the oldest run of
  the owner who has the most runs goes first (ties: the owner whose oldest run is older), never
  anyone's only run, never the run just saved.
Runs saved before owners existed have owner None and count as one owner, the host's. The runs come as
store.RunFile (ModelStore.sizes(): the listing whose owners the store already read and caches).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .store import RunFile


@dataclass(frozen=True)
class Removal:
    run: RunFile
    why: str      # "owner": its owner's newer runs pushed it out; "server": the server's bound did


def plan(runs: list[RunFile], saver: str | None, per_owner: int, max_runs: int, max_bytes: int,
         keep: frozenset[str] = frozenset()) -> list[Removal]:
    """What to delete after `saver` saved a run (never one named in `keep`), oldest first per rule."""
    out = _own_overflow(runs, saver, per_owner, keep)
    gone = {r.run.name for r in out}
    left = [r for r in runs if r.name not in gone]
    return out + _server_overflow(left, max_runs, max_bytes, keep)


def _own_overflow(runs, saver, per_owner, keep) -> list[Removal]:
    mine = sorted((r for r in runs if r.owner == saver), key=lambda r: (r.mtime, r.name), reverse=True)
    return [Removal(r, "owner") for r in mine[max(1, per_owner):] if r.name not in keep]


def _server_overflow(runs, max_runs, max_bytes, keep) -> list[Removal]:
    by_owner: dict[str | None, list[RunFile]] = defaultdict(list)
    for r in sorted(runs, key=lambda r: (r.mtime, r.name)):     # oldest first
        by_owner[r.owner].append(r)
    count, size, out = len(runs), sum(r.size for r in runs), []
    while count > max_runs or size > max_bytes:
        candidates = [(len(rs), -_oldest(rs, keep).mtime, o) for o, rs in by_owner.items()
                      if len(rs) > 1 and _oldest(rs, keep) is not None]
        if not candidates:
            break   # everyone is down to one run (or only kept runs are left): nothing more may go
        _, _, owner = max(candidates, key=lambda c: (c[0], c[1]))
        victim = _oldest(by_owner[owner], keep)
        by_owner[owner].remove(victim)
        count, size = count - 1, size - victim.size
        out.append(Removal(victim, "server"))
    return out


def _oldest(runs: list[RunFile], keep: frozenset[str]) -> RunFile | None:
    return next((r for r in runs if r.name not in keep), None)



def remove(runs_dir: Path, removals: list[Removal]) -> list[Removal]:
    """Delete the planned files; the removals that really happened (one already gone is skipped)."""
    done = []
    for r in removals:
        try:
            (Path(runs_dir) / r.run.name).unlink()
            done.append(r)
        except FileNotFoundError:
            pass
    return done
