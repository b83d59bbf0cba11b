"""Run one candidate in its own sandboxed process and collect what it wrote.

Each candidate gets a fresh directory holding only what it may see — ``train.parquet`` (features +
labels), ``val_features.parquet`` and ``test_features.parquet`` (no labels), ``task.json`` and its
``solution.py`` — hard-linked read-only from a staging directory. The process runs Loom's Python with
``-I -B`` (no user site, no PYTHONPATH, no bytecode writes) under ``sandbox_boot.py``: memory / CPU / file
size rlimits, an irrevocable audit hook (no sockets, no process spawning, no writes outside its
directory), and, where the kernel allows unprivileged user namespaces, ``unshare -rn`` (an empty network
namespace). The parent enforces the wall clock (kills the process group) and keeps the output's head and
tail only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import lru_cache

BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_boot.py")
DATA_FILES = ("train.parquet", "val_features.parquet", "test_features.parquet", "task.json")
HEAD, TAIL = 2000, 4000


@lru_cache(maxsize=1)
def _unshare_prefix() -> tuple:
    if os.environ.get("LOOM_SANDBOX_UNSHARE", "1") == "0":
        return ()
    exe = shutil.which("unshare")
    if not exe:
        return ()
    try:
        r = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=5)
        return (exe, "-rn") if r.returncode == 0 else ()
    except Exception:  # noqa: BLE001
        return ()


def isolation() -> dict:
    """What isolation this machine gives (recorded in the journal)."""
    return {"network_namespace": bool(_unshare_prefix()), "audit_hook": True, "rlimits": True}


def truncate(text: str, head: int = HEAD, tail: int = TAIL) -> str:
    if len(text) <= head + tail + 50:
        return text
    return text[:head] + f"\n… [{len(text) - head - tail} characters cut] …\n" + text[-tail:]


def stage(data_dir: str, train, val_X, test_X, task: dict) -> None:
    """Write the files every candidate may see, once per search."""
    os.makedirs(data_dir, exist_ok=True)
    train.to_parquet(os.path.join(data_dir, "train.parquet"), index=False)
    val_X.to_parquet(os.path.join(data_dir, "val_features.parquet"), index=False)
    test_X.to_parquet(os.path.join(data_dir, "test_features.parquet"), index=False)
    with open(os.path.join(data_dir, "task.json"), "w") as f:
        json.dump(task, f)
    for n in DATA_FILES:
        os.chmod(os.path.join(data_dir, n), 0o444)


BASE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
            "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "LANG": "C.UTF-8"}
ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_zygote.py")


class Zygote:
    """The pre-forked launcher (sandbox_zygote.py): one per search; ``LOOM_SANDBOX_ZYGOTE=0`` turns it off."""

    def __init__(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **BASE_ENV}
        self.proc = subprocess.Popen([*_unshare_prefix(), sys.executable, "-I", "-B", ZYGOTE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        self.exits: dict[int, int] = {}
        self._buf = b""
        msg = self._next(timeout=60)
        if not msg or not msg.get("ready"):
            self.close()
            raise RuntimeError("the sandbox launcher did not start")

    def _next(self, timeout: float):
        import select

        deadline = time.perf_counter() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            if b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                msg = json.loads(line)
                if "exit" in msg:
                    self.exits[msg["exit"]] = msg["rc"]
                    continue
                return msg
            left = max(0.0, deadline - time.perf_counter())
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk

    def start(self, workdir: str, env: dict) -> int:
        self.proc.stdin.write((json.dumps({"dir": workdir, "env": env}) + "\n").encode())
        self.proc.stdin.flush()
        msg = self._next(timeout=30)
        if not msg or "pid" not in msg:
            raise RuntimeError("the sandbox launcher did not answer")
        return int(msg["pid"])

    def returncode(self, pid: int):
        self._next(timeout=0)
        return self.exits.get(pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self):
        try:
            self.proc.stdin.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_zygote():
    """A Zygote, or None where it cannot start (then each candidate starts its own interpreter)."""
    if os.environ.get("LOOM_SANDBOX_ZYGOTE", "1") == "0":
        return None
    try:
        return Zygote()
    except Exception:  # noqa: BLE001
        return None


class Running:
    """A started candidate; ``wait()`` returns the result dict."""

    timed_out = False

    def __init__(self, code: str, workdir: str, data_dir: str, *, timeout: float, mem_mb: int, zygote: Zygote | None = None):
        self.workdir = workdir = os.path.realpath(workdir)
        self.timeout = timeout
        os.makedirs(workdir, exist_ok=True)
        for n in DATA_FILES:
            dst = os.path.join(workdir, n)
            try:
                os.link(os.path.join(data_dir, n), dst)
            except OSError:
                shutil.copyfile(os.path.join(data_dir, n), dst)
        with open(os.path.join(workdir, "solution.py"), "w") as f:
            f.write(code)
        os.makedirs(os.path.join(workdir, "tmp"), exist_ok=True)
        env = {"HOME": workdir, "TMPDIR": os.path.join(workdir, "tmp"), "MPLCONFIGDIR": os.path.join(workdir, "tmp"),
               "LOOM_SANDBOX_MEM_MB": str(mem_mb), "LOOM_SANDBOX_CPU_S": str(int(timeout * 2 + 5))}
        self.out_path = os.path.join(workdir, "output.txt")
        self.zygote = zygote if zygote is not None and zygote.alive() else None
        self.t0 = time.perf_counter()
        self.proc = None
        if self.zygote is not None:
            try:
                self.pid = self.zygote.start(workdir, env)
                return
            except RuntimeError:
                self.zygote = None
        self._out = open(self.out_path, "wb")
        cmd = [*_unshare_prefix(), sys.executable, "-I", "-B", BOOT]
        self.proc = subprocess.Popen(cmd, cwd=workdir, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **BASE_ENV, **env},
                                     stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def _rc(self):
        if self.proc is not None:
            return self.proc.poll()
        rc = self.zygote.returncode(self.pid)
        if rc is None and not self.zygote.alive():
            return -9
        return rc

    def poll(self) -> bool:
        if self._rc() is not None:
            return True
        if time.perf_counter() - self.t0 > self.timeout:
            self._kill()
            self.timed_out = True
            return True
        return False

    def _kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc is not None:
            self.proc.wait()
        else:
            deadline = time.perf_counter() + 5
            while self._rc() is None and time.perf_counter() < deadline:
                time.sleep(0.01)

    def wait(self) -> dict:
        while not self.poll():
            time.sleep(0.005)
        wall = time.perf_counter() - self.t0
        rc = self._rc()
        if self.proc is not None:
            self._out.close()
        try:
            raw = open(self.out_path, "rb").read().decode("utf-8", "replace")
        except OSError:
            raw = ""
        run = {}
        try:
            run = json.load(open(os.path.join(self.workdir, "run.json")))
        except (OSError, ValueError):
            pass
        res = {"exit_code": rc, "wall_seconds": wall, "output": truncate(raw), "run": run, "workdir": self.workdir,
               "launcher": "zygote" if self.proc is None else "process"}
        if self.timed_out:
            res["error"] = f"timed out: wall-clock limit of {self.timeout:g}s reached, the process was killed"
        elif rc == 0 and run.get("ok"):
            res["error"] = None
        else:
            res["error"] = failure_reason(raw, run, rc)
        return res


def failure_reason(output: str, run: dict, rc) -> str:
    err = run.get("error") or ""
    if "sandbox: " not in err:
        err = next((l for l in reversed(output.splitlines()) if "SandboxViolation: sandbox: " in l), err)
    if "sandbox: " in err:
        return err.split("sandbox: ", 1)[1].strip()[:300]
    if "MemoryError" in output or err == "memory limit exceeded" or (rc in (-9, 137) and not output.strip()):
        return "memory limit exceeded"
    if rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return "CPU time limit exceeded"
    if err:
        return err[:300]
    lines = [l for l in output.strip().splitlines() if l.strip()]
    return (lines[-1][:300] if lines else f"the candidate exited with code {rc} and no output")


def load_predictions(workdir: str) -> dict:
    import numpy as np

    with np.load(os.path.join(workdir, "predictions.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def run_candidate(code: str, workdir: str, data_dir: str, *, timeout: float = 120.0, mem_mb: int = 4096,
                  zygote: Zygote | None = None) -> dict:
    return Running(code, workdir, data_dir, timeout=timeout, mem_mb=mem_mb, zygote=zygote).wait()
