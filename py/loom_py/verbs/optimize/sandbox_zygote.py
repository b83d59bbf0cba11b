"""A pre-forked sandbox launcher (self-contained; must not import loom_py).

Started once per search, inside bubblewrap (sandbox.py: new user, mount, PID, network, IPC, UTS and cgroup
namespaces; the system and Python read-only; the search's private candidate root bound at ``/loom/sandbox``; the
capabilities of the new user namespace kept so that it can confine each child) — or, where there is no
bubblewrap, as ``[unshare -rn] python -I -B sandbox_zygote.py``. It imports numpy / pandas / scikit-learn /
lightgbm once, then reads one JSON command per line on stdin and forks a child per candidate:

* ``{"dir", "env", "shm_mb", "data", "files"}``: start a candidate. Confined (under bubblewrap), the zygote
  forks it as PID 1 of a new PID namespace (unshare, fork, setns back: one fork, no waiting parent); the child
  enters a new mount and IPC namespace, binds its own directory at ``/loom/work``, binds each of ``files`` of its
  staged data (``/loom/data/<data>``: the search's folds, staged once, bound read-only into the zygote's sandbox)
  read-only onto its directory's file of that name, covers ``/loom/sandbox`` (the other candidates' directories)
  and ``/loom/data`` (the other folds) with empty read-only tmpfs, mounts a private size-limited ``/dev/shm`` and
  ``/tmp`` and a fresh ``/proc`` (no ancestor is visible), drops every capability, sets ``no_new_privs``; the
  kernel kills everything the candidate started (setsid or not) when it ends. Then ``sandbox_boot.main`` runs
  (rlimits, the audit hook, fit/predict). The zygote answers ``{"pid"}`` at once and ``{"exit": pid, "rc": code}``
  when it ends (woken by SIGCHLD, not a poll).
* ``{"kill": pid}``: end that candidate (PID 1 of its namespace: the namespace dies with it).

Forking a warm interpreter saves the ~1 s of interpreter start and imports each candidate would pay; the
zygote also runs Loom's own load/save paths once (``warm``) and freezes its objects out of the collector
(``gc.freeze``), so a child pays neither first-use imports nor copy-on-write of the imported modules.
"""

import ctypes
import gc
import json
import os
import select
import signal
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


def warm() -> None:
    """Run Loom's own load and save paths once here, so that the first-use imports and set-up they trigger
    (pyarrow's pandas conversion, numpy's zip writer) are paid once per search, not in every forked child
    (measured: 0.1 s a fit on a quiet box, 0.4 s with five folds at once on a loaded one)."""
    try:
        import io

        import numpy as np
        import pandas as pd
        import pyarrow as pa
        import pyarrow.ipc

        df = pd.DataFrame({"x": [1.0, 2.0], "i": [1, 2], "s": ["a", "b"], "c": pd.Categorical(["u", "v"]),
                           "n": pd.array([1, None], dtype="Int64"), "t": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                           "b": [True, False]})
        table = pa.Table.from_pandas(df, preserve_index=False)
        sink = pa.BufferOutputStream()
        with pyarrow.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        back = sandbox_boot.load_frame(pa.BufferReader(sink.getvalue()))
        back.pop("x")
        np.savez(io.BytesIO(), a=np.asarray(back["i"]), s=np.asarray(back["s"]).astype(str))
    except Exception:  # noqa: BLE001 - only a warm-up: a child does the same and reports what fails
        pass


warm()

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 4096, 16384, 1 << 18
MS_REMOUNT = 32
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
_libc = ctypes.CDLL(None, use_errno=True)
_PIDNS_FD = -1  # the zygote's own PID namespace (new_pid_namespace_fork sets its children's back to it)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(src, dst, fstype, flags, data=None) -> None:
    _check(_libc.mount(src and src.encode(), dst.encode(), fstype and fstype.encode(), flags,
                       data and data.encode()), f"mount {dst}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # past the last cap it fails harmlessly
    hdr, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _python_paths_under_tmp() -> list[str]:
    """The interpreter's prefixes (a venv and the installation it points to) that lie under /tmp."""
    out = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        for q in (p, os.path.realpath(p)):
            if q and q.startswith("/tmp/") and os.path.isdir(q) and q not in out:
                out.append(q)
    return out


def new_pid_namespace_fork() -> int:
    """``os.fork()`` whose child is PID 1 of a new PID namespace: the zygote unshares CLONE_NEWPID (its next child
    goes into a new namespace), forks, and sets the namespace for its children back to its own (setns), so every
    candidate gets a fresh one — without a second fork and a waiting parent per candidate."""
    _check(_libc.unshare(CLONE_NEWPID), "unshare(pid)")
    try:
        pid = os.fork()
    finally:
        if os.getpid() != 1:  # the zygote (the child is PID 1 of its namespace)
            _check(_libc.setns(_PIDNS_FD, CLONE_NEWPID), "setns(pid)")
    return pid


def confine(name: str, shm_mb: int, data: str | None = None, files: tuple = ()) -> None:
    """In the candidate, PID 1 of its own PID namespace (new_pid_namespace_fork): its own mount and IPC namespaces
    and view, then every capability dropped. ``data``: the candidate's staged data, a directory under
    ``/loom/data`` (the search's staged folds, bound read-only into the zygote's sandbox); each of ``files`` in it
    is bound read-only onto the (empty) file of that name in the candidate's directory — the same bytes for every
    candidate of the search, written once, and no candidate can change them (a read-only mount: no write, chmod,
    rename, unlink or hard link reaches them), nor see any other fold's."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount(os.path.join("/loom/sandbox", name), "/loom/work", None, MS_BIND | MS_REC)
    if data is not None:
        src = os.path.join("/loom/data", data)
        for f in files:
            _mount(os.path.join(src, f), os.path.join("/loom/work", f), None, MS_BIND)
            _mount(None, os.path.join("/loom/work", f), None,
                   MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for hide in ("/loom/sandbox", "/loom/data"):  # the other candidates' directories, the other folds' data
        if os.path.isdir(hide):
            _mount("tmpfs", hide, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0555")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={max(1, int(shm_mb))}m,mode=1777")
    # the candidate's own /tmp; Python's own paths that live under /tmp (a checkout there) are held aside first
    # and bound back on top of it, read-only, so the interpreter keeps seeing its modules
    held = _python_paths_under_tmp()
    if held:
        _mount("tmpfs", "/loom/hold", "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0700")
        for i, path in enumerate(held):
            os.mkdir(f"/loom/hold/{i}")
            _mount(path, f"/loom/hold/{i}", None, MS_BIND | MS_REC)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
    for i, path in enumerate(held):
        os.makedirs(path, exist_ok=True)
        _mount(f"/loom/hold/{i}", path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this namespace's: no ancestor in it
    _drop_capabilities()


def say(obj):
    os.write(1, (json.dumps(obj) + "\n").encode())


def child(cmd):
    sandbox_boot.mark("forked")
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the zygote gone (bubblewrap ended it): so is this
    os.setsid()
    work = cmd["dir"]
    if cmd.get("confine"):
        confine(cmd["dir"], int(cmd.get("shm_mb") or 64), cmd.get("data"), tuple(cmd.get("files") or ()))
        work = "/loom/work"
        sandbox_boot.mark("confined")
    fd = os.open(os.path.join(work, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    nul = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nul, 0)
    os.close(nul)
    os.closerange(3, 1 << 16)  # nothing of the zygote's (its command pipe) reaches the candidate
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.environ.clear()
    os.environ.update(cmd.get("env") or {})
    os.chdir(work)
    sandbox_boot.T0 = sandbox_boot.time.perf_counter()
    code = 1
    try:
        code = sandbox_boot.main(work)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def probe() -> bool:
    """Can a child confine itself here (the capabilities of bubblewrap's user namespace), twice in a row (the
    PID namespace for children is set back after each)?"""
    for _ in range(2):
        pid = new_pid_namespace_fork()
        if pid == 0:
            code = 1
            try:
                confine(".probe", 1)
                code = 0 if not os.listdir("/loom/sandbox") and os.getpid() == 1 and os.readlink("/proc/self") == "1" else 1
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return False
    return True


def main():
    global _PIDNS_FD
    confined = "--confine" in sys.argv
    if confined:
        try:
            _PIDNS_FD = os.open("/proc/self/ns/pid", os.O_RDONLY)
            ok = probe()
        except OSError:
            ok = False
        if not ok:
            say({"ready": False, "error": "a candidate cannot be confined here"})
            return
    # a child's exit wakes the loop at once (SIGCHLD through the wakeup fd), not at the next poll
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    gc.freeze()  # the imported modules' objects: never scanned by a child's collector (no copy-on-write of them)
    say({"ready": True, "confined": confined})
    buf = b""
    live = set()
    while True:
        r, _, _ = select.select([0, wake_r], [], [])
        if wake_r in r:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if 0 in r:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                cmd = json.loads(line)
                if "kill" in cmd:
                    if cmd["kill"] in live:
                        try:
                            os.kill(cmd["kill"], signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    continue
                cmd["confine"] = confined
                try:
                    pid = new_pid_namespace_fork() if confined else os.fork()
                except OSError as e:  # out of processes or namespaces: Loom starts this one on its own
                    say({"error": f"fork: {e}"[:200]})
                    continue
                if pid == 0:
                    try:
                        child(cmd)
                    finally:
                        os._exit(1)  # never back into the zygote's loop
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
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass


if __name__ == "__main__":
    main()
