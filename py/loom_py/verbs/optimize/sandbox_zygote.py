"""A pre-forked sandbox launcher (self-contained; must not import loom_py).

Started once per search as ``[unshare -rn] python -I -B sandbox_zygote.py`` (so every candidate it forks
lives in the same empty network namespace). It imports numpy / pandas / scikit-learn / lightgbm once, then
reads one JSON command per line on stdin ``{"dir", "env"}`` and forks a child per candidate: the child
starts its own session, moves into its directory, sends its output to ``output.txt``, and runs
``sandbox_boot.main`` (rlimits, the audit hook, fit/predict). The zygote answers ``{"pid"}`` at once and
``{"exit": pid, "rc": code}`` when the child ends; the parent enforces the wall clock with killpg.
Forking a warm interpreter saves the ~1 s of interpreter start and imports each candidate would pay.
"""

import json
import os
import select
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sandbox_boot  # noqa: E402

for mod in ("numpy", "pandas", "pyarrow.parquet", "sklearn.pipeline", "sklearn.compose", "sklearn.preprocessing",
            "sklearn.impute", "sklearn.linear_model", "sklearn.ensemble", "sklearn.metrics", "sklearn.model_selection",
            "lightgbm"):
    try:
        __import__(mod)
    except Exception:  # noqa: BLE001 - a missing optional library is imported by the candidate itself
        pass


def say(obj):
    os.write(1, (json.dumps(obj) + "\n").encode())


def child(cmd):
    os.setsid()
    fd = os.open(os.path.join(cmd["dir"], "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    nul = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nul, 0)
    os.close(nul)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.environ.update(cmd.get("env") or {})
    os.chdir(cmd["dir"])
    sandbox_boot.T0 = sandbox_boot.time.perf_counter()
    code = 1
    try:
        code = sandbox_boot.main(cmd["dir"])
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main():
    say({"ready": True})
    buf = b""
    live = set()
    while True:
        r, _, _ = select.select([0], [], [], 0.01)
        if r:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                cmd = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    child(cmd)
                live.add(pid)
                say({"pid": pid, "dir": cmd["dir"]})
        while live:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                live.clear()
                break
            if pid == 0:
                break
            live.discard(pid)
            say({"exit": pid, "rc": os.waitstatus_to_exitcode(status)})
    for pid in list(live):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


if __name__ == "__main__":
    main()
