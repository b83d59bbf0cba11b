"""macOS: the sandbox-exec (Seatbelt) profile for one candidate — pure text, no I/O (sandbox.py gathers the
paths and runs ``sandbox-exec -p PROFILE python -I -B sandbox_boot.py``).

The equivalent of the bubblewrap sandbox where macOS has no namespaces (docs/architecture.md, "The sandbox"):

* default deny; the interpreter is the only program it may exec (sandbox-exec execs it), no fork, signals and
  process information for itself only;
* no network at all (``network*`` denied: no TCP/UDP, no Unix socket — the warm image's included);
* reads: the system, then the private places denied (the home directory, the workspace and its datastore,
  ``LOOM_HOME`` with its runtime, the host's temp directories where other candidates' directories and the
  launchers' sockets live), then what the candidate needs re-allowed inside them (Python's prefixes, the boot
  script, its own directory). Seatbelt takes the last matching rule, so the order is the policy;
* writes: its own directory and ``/dev/null`` only; no POSIX shared memory (no shared-memory bombs, nothing
  left behind), semaphores allowed (joblib / multiprocessing locks);
* the environment is built by sandbox.py from the same allowlist as on Linux.

Untested on a real Mac (the tests check the profile text on Linux).
"""

from __future__ import annotations

# a few system services Python's standard library reaches on macOS (user lookup, logging); nothing else
MACH_SERVICES = ("com.apple.system.opendirectoryd.libinfo", "com.apple.system.logger", "com.apple.logd")


def quote(path: str) -> str:
    """A path as an SBPL string literal; a path that cannot be written as one safely is refused."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ValueError(f"a path with control characters: {path!r}")
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rule(verb: str, op: str, filters: list[str]) -> list[str]:
    if not filters:
        return []
    return [f"({verb} {op}"] + [f"  {f}" for f in filters] + ["  )"]


def profile(*, work: str, executables: list[str], python: list[str], boot: list[str], deny_read: list[str]) -> str:
    """The SBPL profile for a candidate whose directory is ``work`` (resolved paths: Seatbelt matches the real
    path, e.g. /private/var/folders/… for /var/folders/…). ``executables``: the interpreter sandbox-exec runs (as
    invoked — a venv's link — and resolved);
    ``python``: its prefixes (read-only); ``boot``: Loom's boot files (read-only); ``deny_read``: the places a
    candidate must not read (home, workspace, datastore, LOOM_HOME, the host's temp directories)."""
    sub = lambda paths: [f"(subpath {quote(p)})" for p in paths]  # noqa: E731
    lit = lambda paths: [f"(literal {quote(p)})" for p in paths]  # noqa: E731
    lines = ["(version 1)", "(deny default)",
             "; the interpreter sandbox-exec starts is the only program; no fork, no other process",
             *_rule("allow", "process-exec", lit(executables)),
             "(allow process-info* (target self))", "(allow signal (target self))", "(allow sysctl-read)",
             *_rule("allow", "mach-lookup", [f'(global-name "{m}")' for m in MACH_SERVICES]),
             "(allow ipc-posix-sem)",
             "; reads: the system; then the private places; then what the candidate needs inside them (last match wins)",
             "(allow file-read*)",
             *_rule("deny", "file-read*", sub(deny_read)),
             *_rule("allow", "file-read*", sub(python) + lit(boot) + sub([work])),
             "(allow file-read-metadata (vnode-type DIRECTORY))",
             "; writes: its own directory only",
             *_rule("allow", "file-write*", sub([work]) + lit(["/dev/null"])),
             "; no network of any kind, no shared memory, no fork (after every allow: these win)",
             "(deny network*)", "(deny ipc-posix-shm*)", "(deny process-fork)"]
    return "\n".join(lines) + "\n"
