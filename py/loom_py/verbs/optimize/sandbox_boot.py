"""Runs INSIDE a candidate's sandbox process (``python -I -B sandbox_boot.py`` with cwd = the candidate's
directory; under bubblewrap that directory is ``/loom/work`` and nothing of the host but the system and Python's
files is visible, see sandbox.py). Self-contained on purpose: it must not import loom_py.

1. limits: RLIMIT_AS (memory: it counts shared mappings too, so a shared mmap cannot outgrow the limit),
   RLIMIT_CPU (backstop to the parent's wall clock), RLIMIT_FSIZE;
2. an audit hook (irrevocable), the second layer behind the OS sandbox: it refuses sockets, process spawning
   and forking, libc's process / network / file calls through ctypes, and any write / delete / rename / fifo / database outside the candidate's
   directory (a relative path is resolved against the process's current directory at the time of the call);
3. loads ``solution.py``, calls ``make_model()``, fits it on train.arrow, predicts the validation and
   test features (whose labels it never sees), and saves predictions + the fitted model in its directory
   (not a cross-validation fold's model: ``LOOM_SANDBOX_SAVE_MODEL=0``, nothing uses it).
Timings go to ``run.json``; the parent (Loom) scores the predictions itself.
"""

import os
import sys
import time

T0 = time.perf_counter()
PHASES = {}  # name -> time.perf_counter() (CLOCK_MONOTONIC: the parent's clock too), where this run's time goes


def mark(name: str) -> None:
    PHASES[name] = time.perf_counter()


HERE = os.path.realpath(os.getcwd())


AS_SLACK_MB = 256  # thread stacks and the libraries a candidate's own imports map, on top of its budget


def _vm_size() -> int:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _limits():
    import resource

    mem = int(os.environ.get("LOOM_SANDBOX_MEM_MB", "4096")) * 1024 * 1024
    cpu = int(float(os.environ.get("LOOM_SANDBOX_CPU_S", "600")))
    # RLIMIT_AS counts every mapping, shared ones included (RLIMIT_DATA does not: a MAP_SHARED region escaped
    # it). What this process has already mapped (the interpreter, or a pre-forked worker's imports) is not the
    # candidate's: the limit is that plus the budget.
    limit = _vm_size() + mem + AS_SLACK_MB * 1024 * 1024
    for lim, val in ((resource.RLIMIT_AS, limit), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, 512 * 1024 * 1024)):
        try:
            soft, hard = resource.getrlimit(lim)
            if hard != resource.RLIM_INFINITY:
                val = min(val, hard)
            resource.setrlimit(lim, (val, hard))
        except (ValueError, OSError):
            pass


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_ALLOWED_DEV = ("/dev/null", "/dev/shm")


def _inside(path) -> bool:
    try:
        if isinstance(path, int):
            return True  # an already-open fd
        p = os.fsdecode(path)
        # relative to the directory the process is in NOW (a candidate may have chdir'd out of its own)
        full = os.path.realpath(p if os.path.isabs(p) else os.path.join(os.getcwd(), p))
    except Exception:
        return False
    return full == HERE or full.startswith(HERE + os.sep) or full.startswith(_ALLOWED_DEV)


_PATH_EVENTS = ("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                "shutil.rmtree", "os.symlink", "os.link", "os.rename", "shutil.copyfile", "shutil.move",
                "os.mkfifo", "os.mknod", "shutil.copytree", "os.chflags", "os.setxattr", "os.removexattr")
_SPAWN_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn", "os.startfile",
                 "os.fork", "os.forkpty", "os.kill", "os.killpg", "signal.pthread_kill")
# libc's process, network and file entry points reached through ctypes (the OS sandbox stops them anyway)
_LIBC_NAMES = {"system", "fork", "vfork", "clone", "clone3", "execve", "execv", "execvp", "execl", "execlp", "popen",
               "posix_spawn", "posix_spawnp", "socket", "connect", "bind", "sendto", "sendmsg", "open", "open64",
               "openat", "openat64", "creat", "mkfifo", "mknod", "link", "linkat", "symlink", "rename", "renameat",
               "unlink", "unlinkat", "setsid", "syscall", "ptrace", "kill", "chdir", "mount", "unshare", "setns"}


class SandboxViolation(PermissionError):
    pass


def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and path is not None and not _inside(path):
            raise SandboxViolation(f"sandbox: write outside the candidate directory refused: {path}")
    elif event in _PATH_EVENTS:
        paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
        for p in paths:
            if not _inside(p):
                raise SandboxViolation(f"sandbox: {event} outside the candidate directory refused: {os.fsdecode(p)}")
    elif event == "sqlite3.connect":
        db = args[0] if args else None
        if isinstance(db, (str, bytes, os.PathLike)) and os.fsdecode(db) not in (":memory:", "") and not _inside(db):
            raise SandboxViolation(f"sandbox: a database outside the candidate directory refused: {os.fsdecode(db)}")
    elif event in ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
                   "socket.sendto", "socket.sendmsg", "socket.socketpair"):
        raise SandboxViolation("sandbox: network access refused")
    elif event in _SPAWN_EVENTS:
        raise SandboxViolation(f"sandbox: starting processes refused ({event})")
    elif event == "ctypes.dlsym":
        sym = args[1] if len(args) > 1 else None
        if isinstance(sym, (str, bytes)) and os.fsdecode(sym) in _LIBC_NAMES:
            raise SandboxViolation(f"sandbox: ctypes access to {os.fsdecode(sym)}() refused")


def load_frame(source):
    """A staged table (sandbox.stage: an uncompressed Arrow IPC file, the pandas schema kept) as the DataFrame
    Loom staged — memory-mapped, no decoding, one thread (the folds of a node run side by side). ``source``: a
    path, or a buffer (the pre-forked launcher warms this path once so that no candidate pays its first-use
    imports)."""
    import pyarrow as pa
    import pyarrow.ipc

    if isinstance(source, (str, bytes, os.PathLike)):
        with pa.memory_map(os.fsdecode(source)) as src:
            table = pyarrow.ipc.open_file(src).read_all()
    else:
        table = pyarrow.ipc.open_file(source).read_all()
    return table.to_pandas(use_threads=False)


def _final_class(model) -> str:
    m = model
    while hasattr(m, "steps") and m.steps:
        m = m.steps[-1][1]
    return type(m).__name__


def main(here: str | None = None) -> int:
    global HERE
    import json

    if here:
        HERE = os.path.realpath(here)
    PHASES["boot"] = T0
    import pickle
    import traceback

    try:  # Loom's own imports, before the limits (the address-space limit counts from what is mapped now)
        import numpy as np
        import pandas as pd
        import pyarrow.ipc  # noqa: F401
    except Exception:  # noqa: BLE001 - reported below, under the hook
        pass
    _limits()
    if os.environ.get("LOOM_SANDBOX_HOOK", "1") != "0":  # only Loom sets the environment (tests turn it off)
        sys.addaudithook(_hook)
    info = {"ok": False}
    here = lambda name: os.path.join(HERE, name)  # noqa: E731 - the candidate may chdir: Loom's paths are absolute
    try:
        import numpy as np
        import pandas as pd

        t_imp = time.perf_counter()
        mark("ready")
        meta = json.load(open(here("task.json")))
        train = load_frame(here("train.arrow"))
        target = meta["target"]
        y = train.pop(target)
        Xv = load_frame(here("val_features.arrow"))
        Xt = load_frame(here("test_features.arrow"))
        mark("loaded")
        import types

        mod = types.ModuleType("solution")  # registered so the fitted model's own functions/classes pickle
        mod.__file__ = os.path.join(HERE, "solution.py")
        sys.modules["solution"] = mod
        ns = mod.__dict__
        src = open(here("solution.py")).read()
        exec(compile(src, "solution.py", "exec"), ns)
        if "make_model" not in ns or not callable(ns["make_model"]):
            raise RuntimeError("solution.py must define make_model() returning an unfitted scikit-learn-compatible estimator")
        model = ns["make_model"]()
        mark("made")
        t_fit = time.perf_counter()
        model.fit(train, y)
        fit_s = time.perf_counter() - t_fit
        mark("fitted")
        t_pred = time.perf_counter()
        out = {}
        for name, X in (("val", Xv), ("test", Xt)):
            out[f"{name}_labels"] = np.asarray(model.predict(X))
            if meta["task"] == "classification" and hasattr(model, "predict_proba"):
                try:
                    out[f"{name}_proba"] = np.asarray(model.predict_proba(X), dtype=float)
                except Exception as e:  # noqa: BLE001
                    print(f"predict_proba failed: {e}", file=sys.stderr)
        pred_s = time.perf_counter() - t_pred
        classes = getattr(model, "classes_", None)
        if classes is not None:
            out["classes"] = np.asarray(classes)
        mark("predicted")
        np.savez(here("predictions.npz"), **{k: (v.astype(str) if v.dtype == object else v) for k, v in out.items()})
        mark("saved")
        if os.environ.get("LOOM_SANDBOX_SAVE_MODEL", "1") != "0":  # a cross-validation fold's model is never used
            try:
                with open(here("model.pkl"), "wb") as f:
                    pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
                info["model_saved"] = True
            except Exception as e:  # noqa: BLE001
                info["model_saved"] = False
                print(f"the fitted model could not be pickled: {e}", file=sys.stderr)
        mark("pickled")
        info.update(ok=True, import_seconds=t_imp - T0, fit_seconds=fit_s, predict_seconds=pred_s,
                    model_class=_final_class(model))
        code = 0
    except MemoryError:
        traceback.print_exc()
        print("sandbox: memory limit exceeded (MemoryError)", file=sys.stderr)
        info["error"] = "memory limit exceeded"
        code = 3
    except BaseException as e:  # noqa: BLE001
        traceback.print_exc()
        info["error"] = f"{type(e).__name__}: {e}"[:500]
        code = 1
    info["total_seconds"] = time.perf_counter() - T0
    info["phases"] = PHASES
    try:
        with open(here("run.json"), "w") as f:
            json.dump(info, f)
    except Exception:  # noqa: BLE001
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    os._exit(main())
