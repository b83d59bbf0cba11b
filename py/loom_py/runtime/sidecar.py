"""Run side computations on the spare core while the main process imports and fits models.

Loom's steps pin the model to one thread (determinism, fair timing), so on a machine with two or more
cores one core is idle while the main process imports scikit-learn and fits. ``Sidecar(fn, *args)``
forks a child that computes ``fn(*args)`` from the parent's memory as it is at the fork (copy-on-write:
nothing is serialized on the way in) and sends the pickled result back through a pipe; ``result()``
collects it. ``fn`` may be a generator function: the child sends each item as soon as it is made and
``next()`` collects them in order, so the parent can start on the first item while the child works on
the next. The values are the ones the inline call returns (the tests compare both), so a sidecar changes
when the work runs, never what it reports.

It runs inline instead when fork is unavailable, when only one core is usable, off Linux unless
``LOOM_SIDECAR=1``, or with ``LOOM_SIDECAR=0``; if the child dies before an item arrives (killed, out of memory, an unpicklable
value) the work is redone inline, so a sidecar can only save time, never lose a result. An exception
raised in the child is re-raised by ``next()``/``result()`` in the parent, where the inline call would
have raised it.

Fork before the parent starts OpenMP-parallel work (the child does numpy/pandas only) and before any
thread that holds locks the child would need; the child leaves with ``os._exit`` so no atexit handler,
buffered output or Metaflow hook of the parent runs twice."""

from __future__ import annotations

import inspect
import os
import sys
import pickle
import time


def spare_cores() -> int:
    """Cores usable by this process beyond the one the main work uses."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(0, n - 1)


REMOTE_COMPUTE = ("kubernetes", "batch")


def remote_compute() -> str | None:
    """The Metaflow remote compute this process belongs to, or None on the user's machine: inside a remote
    task (Metaflow sets METAFLOW_RUNTIME_ENVIRONMENT / METAFLOW_KUBERNETES_WORKLOAD there), or in the
    launcher of a run started with ``--with kubernetes|batch`` (the CLI sets LOOM_METAFLOW_WITH)."""
    rt = os.environ.get("METAFLOW_RUNTIME_ENVIRONMENT", "")
    if rt in ("kubernetes", "aws-batch") or os.environ.get("METAFLOW_KUBERNETES_WORKLOAD"):
        return "batch" if rt == "aws-batch" else "kubernetes"
    for spec in os.environ.get("LOOM_METAFLOW_WITH", "").split():
        name = spec.split(":", 1)[0]
        if name in REMOTE_COMPUTE:
            return name
    return None


def enabled() -> bool:
    """On by default on Linux only: forking a process that has used macOS system frameworks (Accelerate,
    the Objective-C runtime) can crash the child, so elsewhere it takes ``LOOM_SIDECAR=1`` to opt in.
    Off on remote compute: a container's CPU share is its pod's limit, not the cores the kernel reports,
    so a "spare" core there would oversubscribe the task (and Loom's local speed-ups stay local)."""
    flag = os.environ.get("LOOM_SIDECAR", "")
    if flag == "0" or not hasattr(os, "fork") or remote_compute() or spare_cores() < 1:
        return False
    return flag == "1" or sys.platform.startswith("linux")


def _items(fn, args, kwargs):
    out = fn(*args, **kwargs)
    if inspect.isgenerator(out):
        yield from out
    else:
        yield out


class Sidecar:
    def __init__(self, fn, *args, **kwargs):
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._pid = None
        self._file = None
        self._taken = 0  # items handed to the parent so far
        self._inline = None  # the in-process generator, when the work runs (or is redone) here
        self._done = False
        self.forked = False
        self.seconds: list[float] = []  # each item's own duration, measured where it ran
        if enabled():
            self._fork()

    def _fork(self) -> None:
        import warnings

        r, w = os.pipe()
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns when a threaded process forks
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return
        if pid == 0:  # the child: compute, send, leave without running the parent's exit machinery
            code = 0
            try:
                os.close(r)
                with os.fdopen(w, "wb") as f:
                    it = _items(self._fn, self._args, self._kwargs)
                    while True:
                        t = time.perf_counter()
                        try:
                            payload = ("ok", next(it), time.perf_counter() - t)
                        except StopIteration:
                            f.write(pickle.dumps(("end", None, 0.0)))
                            break
                        except BaseException as e:  # noqa: BLE001 - re-raised in the parent
                            payload = ("err", e, time.perf_counter() - t)
                        try:
                            data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
                        except Exception:  # unpicklable: stop here; the parent redoes the rest inline
                            break
                        f.write(data)
                        f.flush()
                        if payload[0] == "err":
                            break
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        self._pid, self._file, self.forked = pid, os.fdopen(r, "rb"), True

    def next(self):
        """The next item (a generator's next yield; a plain function's single result)."""
        if self._file is not None:
            try:
                kind, value, seconds = pickle.load(self._file)
            except (EOFError, pickle.UnpicklingError, OSError):
                self._close()
                self.forked = False  # the child left no further item: the rest is done here
            else:
                if kind == "end":
                    self._close()
                    self._done = True
                    raise StopIteration
                self._taken += 1
                self.seconds.append(seconds)
                if kind == "err":
                    self._close()
                    raise value
                return value
        if self._done:
            raise StopIteration
        if self._inline is None:
            self._inline = _items(self._fn, self._args, self._kwargs)
            for _ in range(self._taken):  # what the child already delivered (deterministic: same values)
                next(self._inline)
        t = time.perf_counter()
        value = next(self._inline)
        self._taken += 1
        self.seconds.append(time.perf_counter() - t)
        return value

    def result(self):
        """The single result of a plain function (or the next item of a generator)."""
        value = self.next()
        if self._file is not None and not inspect.isgeneratorfunction(self._fn):
            self._close()
        return value

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:
                pass

    def cancel(self) -> None:
        """Stop a child whose results are no longer wanted (the parent is failing or has what it needs)."""
        if self._file is not None:
            import signal

            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._close()
