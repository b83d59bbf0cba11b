"""A pre-forked sandbox launcher (self-contained; must not import loom_py).

Started once per search, inside bubblewrap (sandbox.py: new user, mount, PID, network, IPC, UTS and cgroup
namespaces; the system and Python read-only; the search's private candidate root bound at ``/loom/sandbox``; the
capabilities of the new user namespace kept so that it can confine each child) — or, where there is no
bubblewrap, as ``[unshare -rn] python -I -B sandbox_zygote.py``. It imports numpy / pandas / scikit-learn /
lightgbm once, then reads one JSON command per line on stdin and forks a child per candidate:

* ``{"dir", "env", "confine", "shm_mb"}``: start a candidate. Confined (under bubblewrap), the child enters
  a new mount, PID and IPC namespace, binds its own directory at ``/loom/work``, covers ``/loom/sandbox`` (the other
  candidates' directories) with an empty read-only tmpfs, mounts a private size-limited ``/dev/shm`` and
  ``/tmp``, and forks the candidate as PID 1 of the new PID namespace: a fresh ``/proc`` (no ancestor is
  visible), every capability dropped, ``no_new_privs``, and the kernel kills everything the candidate
  started (setsid or not) when it ends. Then ``sandbox_boot.main`` runs (rlimits, the audit hook,
  fit/predict). The zygote answers ``{"pid"}`` at once and ``{"exit": pid, "rc": code}`` when it ends.
* ``{"kill": pid}``: end that candidate (its PID 1 dies with its parent, and with it the namespace).

Forking a warm interpreter saves the ~1 s of interpreter start and imports each candidate would pay.
"""

import ctypes
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

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 4096, 16384, 1 << 18
MS_REMOUNT = 32
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
_libc = ctypes.CDLL(None, use_errno=True)
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


def confine(name: str, shm_mb: int) -> int:
    """In a child of the zygote: the candidate's own namespaces and view. Returns 0 in the candidate (PID 1 of
    its namespace, no capabilities left), or the candidate's pid in the waiting parent."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount(os.path.join("/loom/sandbox", name), "/loom/work", None, MS_BIND | MS_REC)
    _mount("tmpfs", "/loom/sandbox", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0555")
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
    pid = os.fork()
    if pid:
        return pid
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _drop_capabilities()
    return 0


def say(obj):
    os.write(1, (json.dumps(obj) + "\n").encode())


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def child(cmd):
    os.setsid()
    work = cmd["dir"]
    if cmd.get("confine"):
        inner = confine(cmd["dir"], int(cmd.get("shm_mb") or 64))
        if inner:  # the waiting parent: the candidate's exit is this process's exit
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _, status = os.waitpid(inner, 0)
            os._exit(_exit_code(status))
        os.setsid()
        work = "/loom/work"
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
    """Can a child confine itself here (the capabilities of bubblewrap's user namespace)?"""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            inner = confine(".probe", 1)
            if inner:
                _, status = os.waitpid(inner, 0)
                code = _exit_code(status)
            else:
                code = 0 if not os.listdir("/loom/sandbox") and os.getpid() == 1 else 1
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def main():
    confined = "--confine" in sys.argv
    if confined and not probe():
        say({"ready": False, "error": "a candidate cannot be confined here"})
        return
    say({"ready": True, "confined": confined})
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
                if "kill" in cmd:
                    if cmd["kill"] in live:
                        try:
                            os.kill(cmd["kill"], signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    continue
                cmd["confine"] = confined
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
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass


if __name__ == "__main__":
    main()
