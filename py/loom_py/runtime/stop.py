"""Ctrl-C as a stop request (decision 0007): the CLI creates the file ``LOOM_STOP_FILE`` names and every Loom
process ignores SIGINT while it is named, so a step finishes on the request and records what it did.

``requested()`` is the poll (between candidates, folds, stages). ``stoppable()`` is for work that does not
poll, such as an in-process model fit: while inside it, a watcher thread turns the request into
``Stopped`` raised in the main thread (signal-delivered, so a sleep or a Python-level loop ends within
``poll`` seconds; one long C call finishes first)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading


class Stopped(BaseException):
    """The person asked Loom to stop (a BaseException, so no ``except Exception`` in library code swallows it)."""


def requested() -> bool:
    p = os.environ.get("LOOM_STOP_FILE")
    return bool(p) and os.path.exists(p)


def check() -> None:
    """Raise ``Stopped`` if a stop was requested."""
    if requested():
        raise Stopped()


_SIG = getattr(signal, "SIGUSR2", None)


_active: list[threading.Event] = []  # the innermost stoppable block's "fired" event


def _handler(signum, frame):
    if _active and _active[-1].is_set():
        raise Stopped()


@contextlib.contextmanager
def stoppable(poll: float = 0.1):
    """Raise ``Stopped`` in the main thread when a stop is requested while the block runs. Outside the main
    thread, without LOOM_STOP_FILE or without SIGUSR2, it only checks at entry. The handler stays installed
    after the block (a signal still in flight then does nothing), never the default that would end the process."""
    check()
    main = threading.main_thread()
    if not os.environ.get("LOOM_STOP_FILE") or _SIG is None or threading.current_thread() is not main:
        yield
        return
    done, fired = threading.Event(), threading.Event()

    def watch():
        while not done.wait(poll):
            if requested():
                fired.set()
                try:
                    signal.pthread_kill(main.ident, _SIG)
                except (OSError, ProcessLookupError):
                    pass
                return

    if signal.getsignal(_SIG) is not _handler:
        signal.signal(_SIG, _handler)
    _active.append(fired)
    t = threading.Thread(target=watch, name="loom-stop-watch", daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()
        _active.remove(fired)
    if fired.is_set():  # the request came as the block ended, before the signal was handled
        raise Stopped()
