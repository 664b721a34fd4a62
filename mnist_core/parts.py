"""What is derived from a loaded model, computed once and kept beside it, and the one background worker
that builds the slow parts.

- Parts: per model (a Predictor object) a few named parts, each (value, bytes): the look-alike features
  and the mistakes (insight.py), the unit index (units.py), the page's weights body (mnist_web/weights.py).
  part() builds one in the calling thread (build(predictor)), once even when several threads ask;
  ready_part() returns it if built, else has the worker build it and returns None. This base class
  keeps parts weakly per Predictor, without a bound (a standalone InsightService); ModelStore
  (store.py) keeps them with the models it loaded, under its least-recently-used bounds, and drops
  them with the run.
- BuildWorker: one thread, started on demand and gone when idle, that runs the builds one at a time at
  low priority, with at most MAX_PENDING waiting (more are refused: the caller asks again later). One
  thread, reused, also keeps the allocator from growing a memory arena per build thread; after each
  build the freed memory is handed back to the system (glibc's malloc_trim, where there is one).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

MAX_PENDING = 8        # builds waiting for the worker; beyond this ready_part() asks again later
OBJECT_BYTES = 256     # what a part counts for when it cannot say its size (a list of small records)
_FAILED = "failed:"    # a part's last failure is kept in the same slot, under this prefix


class PartFailed(RuntimeError):
    """The part's last build failed (one line: why); ready_part() says so until retry_after has passed."""


def nbytes_of(value) -> int:
    """Bytes a part holds: bytes/str by length, tensors and arrays (and FeatureIndex, UnitIndex) by their
    nbytes, tuples and lists by their items; anything else counts OBJECT_BYTES."""
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    n = getattr(value, "nbytes", None)
    if isinstance(n, int):
        return n
    if isinstance(value, (tuple, list)):
        return OBJECT_BYTES + sum(nbytes_of(v) for v in value)
    return OBJECT_BYTES


def _low_priority() -> None:
    """This thread only (Linux: threads have their own nice value); elsewhere a no-op."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def trim_memory() -> None:
    """Give freed heap memory back to the system (glibc); a no-op elsewhere."""
    if _TRIM is not None:
        _TRIM(0)


class BuildWorker:
    """One low-priority thread running builds one at a time, each tagged (a model, a part name): a tag
    already waiting or running is not queued twice, and cancel() takes a model's waiting builds out."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._queue: deque[tuple[tuple, Callable[[], None]]] = deque()
        self._tags: set[tuple] = set()          # waiting or running
        self._thread: threading.Thread | None = None

    def submit(self, tag: tuple, fn: Callable[[], None]) -> bool:
        """Queue fn unless its tag is already there; False when MAX_PENDING builds are waiting."""
        with self._lock:
            if tag in self._tags:
                return True
            if len(self._queue) >= self.max_pending:
                return False
            self._queue.append((tag, fn))
            self._tags.add(tag)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mnist-index-builds", daemon=True)
                self._thread.start()
        return True

    def cancel(self, model_id: int) -> None:
        """Drop the waiting builds of one model (tags (id(predictor), name)); a running one finishes."""
        with self._lock:
            keep = deque(job for job in self._queue if job[0][0] != model_id)
            for tag, _ in self._queue:
                if tag[0] == model_id:
                    self._tags.discard(tag)
            self._queue = keep

    def busy(self) -> int:
        """Builds waiting or running."""
        with self._lock:
            return len(self._tags)

    def _run(self) -> None:
        _low_priority()
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                tag, fn = self._queue.popleft()
            try:
                fn()
            except Exception:   # the fn records its own failure; the worker goes on with the next
                pass
            finally:
                with self._lock:
                    self._tags.discard(tag)
                del fn
                trim_memory()


class Parts:
    """Named parts per model; see the module's docstring. Subclasses decide where a model's parts live
    (_slot), what happens when one is added (_added) and whether a model is still wanted (wants)."""

    def __init__(self, worker: BuildWorker | None = None) -> None:
        self.worker = worker if worker is not None else BuildWorker()
        self._lock = threading.RLock()
        self._weak: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()    # predictor -> {name: (v, n)}
        self._locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # predictor -> build lock

    def _slot(self, predictor) -> dict:
        """The dict holding this model's parts (called with self._lock held)."""
        return self._weak.setdefault(predictor, {})

    def _added(self, predictor) -> None:
        """A part was added to this model (the store re-measures and evicts here)."""

    def wants(self, predictor) -> bool:
        """Whether a waiting build for this model is still worth running (the store: it holds the model)."""
        return True

    def cached_part(self, predictor, name: str):
        """The part if built, else None."""
        with self._lock:
            hit = self._slot(predictor).get(name)
        return None if hit is None else hit[0]

    def part(self, predictor, name: str, build: Callable[[object], object]):
        """The part, built in this thread on first use (once, even when several threads ask at once)."""
        hit = self.cached_part(predictor, name)
        if hit is not None:
            return hit
        with self._lock:
            lock = self._locks.setdefault(predictor, threading.Lock())
        with lock:
            hit = self.cached_part(predictor, name)
            if hit is None:
                hit = build(predictor)
                with self._lock:
                    slot = self._slot(predictor)
                    slot[name] = (hit, nbytes_of(hit))
                    slot.pop(_FAILED + name, None)
                self._added(predictor)
        return hit

    def ready_part(self, predictor, name: str, build: Callable[[object], object], retry_after: float = 0.0):
        """The part if built; else None, the worker asked to build it (once). PartFailed (why) while its
        last build failed less than retry_after seconds ago; after that the next call tries again."""
        with self._lock:
            slot = self._slot(predictor)
            hit, failed = slot.get(name), slot.get(_FAILED + name)
        if hit is not None:
            return hit[0]
        if failed is not None and time.monotonic() - failed[0][1] < retry_after:
            raise PartFailed(failed[0][0])
        ref = weakref.ref(predictor)    # a waiting build does not keep a dropped model alive

        def job():
            model = ref()
            if model is not None and self.wants(model):
                self._build(model, name, build)

        self.worker.submit((id(predictor), name), job)
        return None

    def _build(self, predictor, name: str, build: Callable[[object], object]) -> None:
        try:
            self.part(predictor, name, build)
        except Exception as exc:   # unreadable data, out of memory: kept as the reason, for a while
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            with self._lock:
                self._slot(predictor)[_FAILED + name] = ((reason, time.monotonic()), 0)
