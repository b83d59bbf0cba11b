"""Run one candidate in its own sandboxed process and collect what it wrote.

Layers (docs/architecture.md, "The sandbox"):

1. **bubblewrap** (the OS sandbox; ``bwrap``, Debian's ``bubblewrap``): new user, mount, PID, network, IPC,
   UTS and cgroup namespaces, ``--die-with-parent``, ``--new-session``. The candidate's root is built from
   nothing: the system directories (``/usr``, ``/etc``, the ``/bin``-style links) and Python's own prefixes
   read-only, a fresh ``/proc`` and minimal ``/dev``, a private ``/tmp`` and a private size-limited
   ``/dev/shm``, and its own directory at ``/loom/work`` — the only writable place. The workspace, the datastore,
   ``LOOM_HOME``'s runtime, the home directory, the host's ``/tmp`` (the warm image's socket) and every other
   socket are not in its view at all; no network interface but loopback exists.
   On macOS, ``sandbox-exec`` with the profile seatbelt.py writes (no network, writes to its own directory only,
   no read of the home directory, workspace, datastore, ``LOOM_HOME`` or the host's temp directories), one
   process per candidate (no pre-forked launcher) and copies of the staged data — untested on a real Mac.
2. **the candidate directory** lives in a private 0700 directory under the host's temp directory, never under
   ``.loom/`` (no relative path leads to the datastore), and shows exactly what the candidate may see:
   ``train.arrow`` (features + labels), ``val_features.arrow`` and ``test_features.arrow`` (no labels),
   ``task.json``, its ``solution.py``. Sealed rows are never staged. The data files are staged once per search
   per fold (``stage``: Loom's own copy, never a link to the datastore, as uncompressed Arrow IPC that loads by
   memory map) and, under bubblewrap, bound read-only onto empty files of the candidate's directory — a
   read-only mount, so no write, chmod, truncate, rename, unlink, shared mmap or hard link by one candidate
   reaches the bytes the next one trains on, and no other fold's data is in view. Without bubblewrap they are
   copied in per candidate. What it wrote (predictions, the pickled model, timings, output) is copied back out —
   regular files only, never through a link — and the directory is removed.
3. **memory**: RLIMIT_AS in the candidate (counts shared mappings), a size-limited ``/dev/shm``, and, where
   this machine lets Loom make one, a memory cgroup (it counts shared memory and tmpfs pages too).
4. **the audit hook** (``sandbox_boot.py``, irrevocable): no sockets, no processes, no writes outside its
   directory — the second layer, and the only one where bubblewrap is missing (``--unsafe-no-sandbox``).
5. **the environment** is built from an allowlist (``BASE_ENV`` + paths): no key, no proposer URL.

The pre-forked launcher (sandbox_zygote.py) runs inside one bubblewrap per search and confines each child
further (its own mount, PID and IPC namespaces; only its own directory visible; no capabilities). The parent
enforces the wall clock and keeps the output's head and tail only.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from functools import lru_cache

BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_boot.py")
ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_zygote.py")
DATA_FILES = ("train.arrow", "val_features.arrow", "test_features.arrow", "task.json")
RESULT_FILES = ("predictions.npz", "model.pkl", "run.json", "output.txt")
RESULT_MAX_BYTES = 1 << 30
HEAD, TAIL = 2000, 4000
BOX_BOOT = "/loom/boot"  # where the boot scripts are bound inside the sandbox
SHM_MB = 64  # the private /dev/shm of a candidate
BASE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
            "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "LANG": "C.UTF-8",
            "ARROW_DEFAULT_MEMORY_POOL": "system", "PATH": "/usr/local/bin:/usr/bin:/bin"}


@lru_cache(maxsize=1)
def _unshare_prefix() -> tuple:
    """Without bubblewrap: ``unshare -rn`` (an empty network namespace) where the kernel allows it."""
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


def _python_paths() -> list[str]:
    """What the interpreter needs to run: its prefixes (a venv and the installation it points to)."""
    out = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        for q in (p, os.path.realpath(p)):
            if q and os.path.isdir(q) and q not in out and q != "/":
                out.append(q)
    return out


def _root_args() -> list[str]:
    """The candidate's filesystem, built from nothing: system paths and Python read-only, nothing else."""
    args = []
    for top in ("/usr", "/etc", "/opt"):
        if os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for link in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(16 << 20), "--tmpfs", "/tmp",
             "--size", str(SHM_MB << 20), "--tmpfs", "/dev/shm", "--dir", "/loom/work", "--dir", "/loom/hold"]
    # Python after the private /tmp: a venv that lives under the host's /tmp (a checkout there) is bound on top
    # of the empty tmpfs, read-only, and nothing else of the host's /tmp is visible
    for p in _python_paths():
        if not p.startswith(("/usr/", "/opt/")):
            args += ["--ro-bind", p, p]
    args += ["--ro-bind", BOOT, f"{BOX_BOOT}/sandbox_boot.py", "--ro-bind", ZYGOTE, f"{BOX_BOOT}/sandbox_zygote.py"]
    args += ["--chdir", "/loom/work"]
    return args


def bwrap_command(binds: list[tuple[str, str]], *, ro: list[tuple[str, str]] = (), caps: bool = False) -> list[str]:
    """bubblewrap's argv up to the program: every namespace new, the root built by _root_args, ``binds``
    (host path, sandbox path) writable, then ``ro`` (host path, sandbox path) read-only on top of them."""
    exe = shutil.which("bwrap")
    if not exe:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    args = [exe, "--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox"] + _root_args()
    for host, box in binds:
        args += ["--bind", host, box]
    for host, box in ro:
        args += ["--ro-bind", host, box]
    args += ["--remount-ro", "/"]  # the root itself (a tmpfs bubblewrap built) takes no writes
    if caps:  # the zygote's: capabilities of its own user namespace only, to confine each child (then dropped)
        args += ["--cap-add", "ALL"]
    else:  # run by root, bubblewrap keeps the new user namespace's capabilities unless told: a candidate could
        args += ["--cap-drop", "ALL"]  # remount its read-only binds (the staged data, /usr) writable
    return args


@lru_cache(maxsize=1)
def _bwrap_works() -> bool:
    if os.environ.get("LOOM_SANDBOX_BWRAP", "1") == "0" or not shutil.which("bwrap"):
        return False
    try:
        r = subprocess.run(bwrap_command([]) + [sys.executable, "-I", "-c", "pass"], capture_output=True, timeout=30,
                           env=dict(BASE_ENV))
        return r.returncode == 0
    except Exception:  # noqa: BLE001
        return False


SANDBOX_EXEC = "/usr/bin/sandbox-exec"  # macOS (Seatbelt): seatbelt.py writes the profile


def _host_private_paths() -> list[str]:
    """Where a candidate must not read on macOS (resolved): every home directory, the workspace and its
    datastore, LOOM_HOME (its runtime and sockets), the host's temp directories (other candidates' directories)."""
    out = ["/Users", "/Volumes", "/private/tmp", "/private/var/tmp", os.path.expanduser("~"), _host_tmp(),
           os.environ.get("LOOM_HOME") or os.path.expanduser("~/.local/share/loom")]
    ws = os.environ.get("LOOM_WORKSPACE_DIR")
    if ws:
        out.append(os.path.dirname(ws) if os.path.basename(os.path.normpath(ws)) == ".loom" else ws)
    if os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL"):
        out.append(os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"])
    res = []
    for p in out:
        r = os.path.realpath(p)
        if r not in res and r != "/":
            res.append(r)
    return res


def seatbelt_command(work: str) -> list[str]:
    """sandbox-exec's argv up to the program for a candidate in ``work`` (macOS)."""
    from loom_py.verbs.optimize import seatbelt

    exe = list(dict.fromkeys([os.path.abspath(sys.executable), os.path.realpath(sys.executable)]))
    prof = seatbelt.profile(work=os.path.realpath(work), executables=exe,
                            python=[os.path.realpath(p) for p in _python_paths()],
                            boot=[os.path.realpath(BOOT)], deny_read=_host_private_paths())
    return [SANDBOX_EXEC, "-p", prof]


@lru_cache(maxsize=1)
def _seatbelt_works() -> bool:
    if sys.platform != "darwin" or os.environ.get("LOOM_SANDBOX_BWRAP", "1") == "0" or not os.path.exists(SANDBOX_EXEC):
        return False
    probe = tempfile.mkdtemp(prefix="loom-sbx-probe-", dir=_host_tmp())
    try:
        r = subprocess.run(seatbelt_command(probe) + [sys.executable, "-I", "-c", "pass"],
                           capture_output=True, timeout=30, env=dict(BASE_ENV), cwd=probe)
        return r.returncode == 0
    except Exception:  # noqa: BLE001
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def os_sandbox() -> str | None:
    """"bubblewrap" (Linux) or "sandbox-exec" (macOS) where it runs here; None where model-written code would
    have only the audit hook. ``LOOM_SANDBOX_BWRAP=0`` turns the OS sandbox off (benchmarks, tests)."""
    if _bwrap_works():
        return "bubblewrap"
    return "sandbox-exec" if _seatbelt_works() else None


def install_hint() -> str:
    if os.environ.get("LOOM_SANDBOX_BWRAP", "1") == "0":
        return "the OS sandbox is turned off (LOOM_SANDBOX_BWRAP=0): unset it"
    if sys.platform == "darwin":
        if not os.path.exists(SANDBOX_EXEC):
            return f"macOS's sandbox-exec ({SANDBOX_EXEC}) is missing here"
        return f"{SANDBOX_EXEC} did not run Python under Loom's profile here"
    if not shutil.which("bwrap"):
        return "install bubblewrap (`apt-get install bubblewrap`, `dnf install bubblewrap`)"
    return "bubblewrap is installed but cannot create user namespaces here (check kernel.unprivileged_userns_clone / AppArmor)"


# ---- memory cgroup (where the machine lets Loom make one) --------------------------------------------

def _cgroup_parent() -> tuple[str, str] | None:
    """(directory to make cgroups in, flavour "v2" | "v1"), or None."""
    if os.environ.get("LOOM_SANDBOX_CGROUP", "1") == "0":
        return None
    try:
        line = next((l for l in open("/proc/self/cgroup") if l.startswith("0::")), None)
        if line is not None:
            d = os.path.join("/sys/fs/cgroup", line.strip()[3:].lstrip("/"))
            if "memory" in open(os.path.join(d, "cgroup.subtree_control")).read().split() and os.access(d, os.W_OK):
                return d, "v2"
    except OSError:
        pass
    v1 = "/sys/fs/cgroup/memory"
    if os.path.isfile(os.path.join(v1, "memory.limit_in_bytes")) and os.access(v1, os.W_OK):
        return v1, "v1"
    return None


class Cgroup:
    """A memory cgroup with a limit; ``enter`` runs in the child before exec (preexec_fn)."""

    def __init__(self, limit_bytes: int):
        parent = _cgroup_parent()
        if parent is None:
            raise OSError("no writable memory cgroup")
        base, self.flavour = parent
        self.path = tempfile.mkdtemp(prefix="loom-sbx-", dir=base) if self.flavour == "v1" else \
            os.path.join(base, f"loom-sbx-{os.getpid()}-{time.monotonic_ns()}")
        if self.flavour == "v2":
            os.mkdir(self.path)
        try:
            name = "memory.max" if self.flavour == "v2" else "memory.limit_in_bytes"
            with open(os.path.join(self.path, name), "w") as f:
                f.write(str(int(limit_bytes)))
            if self.flavour == "v2":
                try:
                    with open(os.path.join(self.path, "memory.swap.max"), "w") as f:
                        f.write("0")
                except OSError:
                    pass
        except OSError:
            self.remove()
            raise

    def enter(self) -> None:
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write("0")

    def remove(self) -> None:
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)  # its processes are still being reaped


def _cgroup(limit_bytes: int) -> Cgroup | None:
    try:
        return Cgroup(limit_bytes)
    except OSError:
        return None


def isolation() -> dict:
    """What isolation this machine gives (recorded in the journal)."""
    box = os_sandbox()
    bw = box == "bubblewrap"
    return {"os_sandbox": box, "namespaces": ["user", "mount", "pid", "net", "ipc", "uts", "cgroup"] if bw else [],
            "network_namespace": bw or (box is None and bool(_unshare_prefix())), "audit_hook": True, "rlimits": True,
            "network": "none" if box else ("empty namespace" if _unshare_prefix() else "audit hook only"),
            "memory": ("cgroup+" if bw and _cgroup_parent() else "") + "rlimit_as", "private_dev_shm": bw,
            "candidate_dir": "private temp directory outside the workspace; staged data "
                             + ("bound read-only" if bw else "copied in")}


# ---- the candidates' directories ---------------------------------------------------------------------

def _host_tmp() -> str:
    """The host's temp directory, never inside the workspace."""
    t = os.path.realpath(tempfile.gettempdir())
    ws = os.environ.get("LOOM_WORKSPACE_DIR")
    if ws:
        ws = os.path.realpath(ws)
        if t == ws or t.startswith(ws + os.sep) or t.startswith(os.path.dirname(ws) + os.sep + ".loom"):
            t = "/tmp"
    return t


_ROOTS: list[str] = []


def new_root() -> str:
    """A private (0700) directory for candidate directories, removed when this process exits."""
    root = tempfile.mkdtemp(prefix="loom-sbx-", dir=_host_tmp())
    os.makedirs(os.path.join(root, ".probe"))
    _ROOTS.append(root)
    return root


@atexit.register
def _remove_roots() -> None:
    for r in _ROOTS:
        shutil.rmtree(r, ignore_errors=True)


def _copy_in(src: str, dst: str) -> None:
    if os.path.lexists(dst):
        os.remove(dst)
    shutil.copyfile(src, dst)  # a copy, never a link: what one candidate does to its files no other sees
    os.chmod(dst, 0o444)


def _placeholder(path: str) -> None:
    """The empty file a staged file is bound onto (read-only) inside the sandbox."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))


def _copy_out(src: str, dst: str) -> bool:
    """Copy a file the candidate wrote out of its directory: a regular file, not through a link, bounded."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > RESULT_MAX_BYTES:
            return False
        with open(dst, "wb") as out:
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                out.write(b)
        return True
    finally:
        os.close(fd)


def truncate(text: str, head: int = HEAD, tail: int = TAIL) -> str:
    if len(text) <= head + tail + 50:
        return text
    return text[:head] + f"\n… [{len(text) - head - tail} characters cut] …\n" + text[-tail:]


def write_frame(df, path: str) -> None:
    """A table as the sandbox loads it fastest (sandbox_boot.load_frame): an uncompressed Arrow IPC file with the
    pandas schema, memory-mapped on load — no decoding (Parquet cost 10-20 ms a read per fit)."""
    import pyarrow as pa
    import pyarrow.ipc

    table = pa.Table.from_pandas(df, preserve_index=False)
    with pa.OSFile(path, "wb") as sink, pyarrow.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)


def stage(data_dir: str, train, val_X, test_X, task: dict) -> None:
    """Write the files every candidate may see, once per search (read-only; the sandbox binds them read-only
    into each candidate's directory, or copies them where it cannot)."""
    os.makedirs(data_dir, exist_ok=True)
    write_frame(train, os.path.join(data_dir, "train.arrow"))
    write_frame(val_X, os.path.join(data_dir, "val_features.arrow"))
    write_frame(test_X, os.path.join(data_dir, "test_features.arrow"))
    with open(os.path.join(data_dir, "task.json"), "w") as f:
        json.dump(task, f)
    for n in DATA_FILES:
        os.chmod(os.path.join(data_dir, n), 0o444)


class Zygote:
    """The pre-forked launcher (sandbox_zygote.py): one per search, inside one bubblewrap where it runs (its
    children confine themselves further); ``LOOM_SANDBOX_ZYGOTE=0`` turns it off."""

    def __init__(self, mem_cap_mb: int | None = None, data_root: str | None = None):
        """``data_root``: a directory of staged data (sandbox.stage) bound read-only into the launcher's sandbox at
        ``/loom/data``; a candidate whose data lies under it gets its files bound, read-only, not copied."""
        self.root = new_root()
        self.confined = os_sandbox() is not None
        self.data_root = os.path.realpath(data_root) if data_root and self.confined and os.path.isdir(data_root) else None
        self.cgroup = _cgroup(mem_cap_mb << 20) if mem_cap_mb and self.confined else None
        env = dict(BASE_ENV, HOME="/loom/work" if self.confined else self.root,
                   MPLCONFIGDIR="/tmp" if self.confined else os.path.join(self.root, ".probe"))
        if self.confined:
            ro = [(self.data_root, "/loom/data")] if self.data_root else []
            cmd = bwrap_command([(self.root, "/loom/sandbox")], ro=ro, caps=True) + [
                sys.executable, "-I", "-B", f"{BOX_BOOT}/sandbox_zygote.py", "--confine"]
        else:
            cmd = [*_unshare_prefix(), sys.executable, "-I", "-B", ZYGOTE]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, start_new_session=True, cwd=self.root,
                                     preexec_fn=self.cgroup.enter if self.cgroup else None)
        self.exits: dict[int, int] = {}
        self.exit_at: dict[int, float] = {}  # when the zygote said it ended (Running's phases)
        self._buf = b""
        self._answers: list[dict] = []
        msg = self._next(timeout=60)
        if not msg or not msg.get("ready"):
            self.close()
            raise RuntimeError("the sandbox launcher did not start")

    def _lines(self) -> None:
        """The complete lines read so far: exits recorded, any other answer queued for ``_next``."""
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            msg = json.loads(line)
            if "exit" in msg:
                self.exits[msg["exit"]] = msg["rc"]
                self.exit_at[msg["exit"]] = time.perf_counter()
            else:
                self._answers.append(msg)

    def _read(self, timeout: float) -> bool:
        """Read what the launcher wrote, waiting up to ``timeout`` for it; False at the end or on timeout."""
        import select

        r, _, _ = select.select([self.proc.stdout.fileno()], [], [], max(0.0, timeout))
        if not r:
            return False
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            return False
        self._buf += chunk
        self._lines()
        return True

    def _next(self, timeout: float):
        deadline = time.perf_counter() + timeout
        while True:
            self._lines()
            if self._answers:
                return self._answers.pop(0)
            if not self._read(deadline - time.perf_counter()):
                return None

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the launcher to say something (a candidate ended), reading all it said: the
        waiting loops wake when a candidate ends, not at their next poll."""
        if self._read(timeout):
            while self._read(0):
                pass

    def _send(self, obj: dict) -> None:
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def data_name(self, data_dir: str) -> str | None:
        """``data_dir``'s path under ``/loom/data`` when the launcher can bind its files, else None (copy them)."""
        if self.data_root is None:
            return None
        d = os.path.realpath(data_dir)
        if d == self.data_root:
            return "."
        if d.startswith(self.data_root + os.sep):
            return os.path.relpath(d, self.data_root)
        return None

    def start(self, cand_dir: str, env: dict, data: str | None = None) -> int:
        """Start the candidate in ``cand_dir`` (a directory in this zygote's root); ``data``: its staged data
        (data_name) to bind read-only onto its directory's files, or None (they were copied in)."""
        where = os.path.basename(cand_dir) if self.confined else cand_dir
        self._send({"dir": where, "env": env, "shm_mb": SHM_MB, "data": data, "files": list(DATA_FILES) if data else []})
        msg = self._next(timeout=30)
        if not msg or "pid" not in msg:
            raise RuntimeError("the sandbox launcher did not answer")
        return int(msg["pid"])

    def kill(self, pid: int) -> None:
        try:
            self._send({"kill": pid})
        except (BrokenPipeError, OSError):
            pass

    def returncode(self, pid: int):
        if pid not in self.exits:
            self.pump(0)
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
        if self.cgroup is not None:
            self.cgroup.remove()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.root in _ROOTS:
            _ROOTS.remove(self.root)


def start_zygote(mem_cap_mb: int | None = None, data_root: str | None = None):
    """A Zygote, or None where it cannot start (then each candidate starts its own interpreter).
    ``mem_cap_mb``: a memory cgroup limit for everything the zygote runs at once (where a cgroup can be made).
    ``data_root``: the search's staged data, bound read-only for every candidate instead of copied per fit."""
    if os.environ.get("LOOM_SANDBOX_ZYGOTE", "1") == "0" or os_sandbox() == "sandbox-exec":
        return None  # macOS: a forked child cannot enter sandbox-exec's profile; one sandboxed process per candidate
    try:
        return Zygote(mem_cap_mb, data_root)
    except Exception:  # noqa: BLE001
        return None


class Running:
    """A started candidate; ``wait()`` returns the result dict. ``workdir`` is where Loom wants its results
    (predictions.npz, model.pkl, run.json, output.txt); the candidate itself runs in a fresh directory of a
    private sandbox root, removed when it ends."""

    timed_out = False

    def __init__(self, code: str, workdir: str, data_dir: str, *, timeout: float, mem_mb: int, zygote: Zygote | None = None,
                 audit_hook: bool = True, save_model: bool = True):
        """``audit_hook=False`` (tests only) leaves out the second layer, to show what the OS sandbox stops alone.
        ``save_model=False``: no model.pkl (a cross-validation fold's fitted model, which nothing uses)."""
        self.phases = {"begin": time.perf_counter()}  # where the time goes (bench/sandbox_profile.py)
        self.workdir = workdir = os.path.realpath(workdir)
        self.timeout = timeout
        os.makedirs(workdir, exist_ok=True)
        self.zygote = zygote if zygote is not None and zygote.alive() else None
        self.box = os_sandbox()
        self.boxed = self.box == "bubblewrap"  # namespaces: /loom/work, read-only binds
        # without the zygote, a private root of its own (removed with it: a flow task leaves by os._exit)
        self._own_root = None if self.zygote is not None else new_root()
        root = self.zygote.root if self.zygote is not None else self._own_root
        self.cand = cand = tempfile.mkdtemp(prefix="c-", dir=root)
        os.chmod(cand, 0o755)
        # the staged data: under bubblewrap bound read-only onto empty files of its directory (staged once per
        # search; a read-only mount, so nothing the candidate does reaches them); without it, copies
        self.data_dir = data_dir = os.path.realpath(data_dir)
        data_name = self.zygote.data_name(data_dir) if self.zygote is not None else None
        self.bound = data_name is not None or (self.zygote is None and self.boxed)
        for n in DATA_FILES:
            if self.bound:
                _placeholder(os.path.join(cand, n))
            else:
                _copy_in(os.path.join(data_dir, n), os.path.join(cand, n))
        with open(os.path.join(cand, "solution.py"), "w") as f:
            f.write(code)
        os.makedirs(os.path.join(cand, "tmp"), exist_ok=True)
        here = "/loom/work" if self.boxed else cand
        env = {**BASE_ENV, "HOME": here, "TMPDIR": os.path.join(here, "tmp"), "MPLCONFIGDIR": os.path.join(here, "tmp"),
               "LOOM_SANDBOX_MEM_MB": str(mem_mb), "LOOM_SANDBOX_CPU_S": str(int(timeout * 2 + 5))}
        if not audit_hook:
            env["LOOM_SANDBOX_HOOK"] = "0"
        if not save_model:
            env["LOOM_SANDBOX_SAVE_MODEL"] = "0"
        self.out_path = os.path.join(cand, "output.txt")
        self.t0 = self.phases["staged"] = time.perf_counter()
        self.proc = None
        self.cgroup = None
        if self.zygote is not None:
            try:
                self.pid = self.zygote.start(cand, env, data_name)
                self.phases["started"] = time.perf_counter()
                return
            except RuntimeError:
                self.zygote = None
                # the candidate directory stays in the zygote's root (removed with it)
                if self.bound and not self.boxed:
                    for n in DATA_FILES:
                        _copy_in(os.path.join(data_dir, n), os.path.join(cand, n))
                    self.bound = False
        self._out = open(self.out_path, "wb")
        if self.boxed:
            self.cgroup = _cgroup((mem_mb + 512) << 20)
            ro = [(os.path.join(data_dir, n), f"/loom/work/{n}") for n in DATA_FILES] if self.bound else []
            cmd = bwrap_command([(cand, "/loom/work")], ro=ro) + [sys.executable, "-I", "-B", f"{BOX_BOOT}/sandbox_boot.py"]
        elif self.box == "sandbox-exec":
            cmd = seatbelt_command(cand) + [sys.executable, "-I", "-B", BOOT]
        else:
            cmd = [*_unshare_prefix(), sys.executable, "-I", "-B", BOOT]
        self.proc = subprocess.Popen(cmd, cwd=cand, env=env, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=self.cgroup.enter if self.cgroup else None)
        self.pid = self.proc.pid
        self.phases["started"] = time.perf_counter()

    def _rc(self):
        if self.proc is not None:
            return self.proc.poll()
        rc = self.zygote.returncode(self.pid)
        if rc is None and not self.zygote.alive():
            return -9
        return rc

    def poll(self) -> bool:
        if self._rc() is not None:
            if "ended" not in self.phases:
                at = self.zygote.exit_at.get(self.pid) if self.proc is None else None
                self.phases["ended"] = at or time.perf_counter()
            return True
        if time.perf_counter() - self.t0 > self.timeout:
            self._kill()
            self.timed_out = True
            return True
        return False

    def pause(self, timeout: float = 0.05) -> None:
        """Wait a little for this (or another) candidate to end: on the launcher's pipe, else a short sleep."""
        if self.proc is None and self.zygote is not None:
            self.zygote.pump(timeout)
        else:
            time.sleep(0.005)

    def _kill(self):
        if self.proc is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)  # bwrap (its PID namespace dies with it) or the process group
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        else:
            self.zygote.kill(self.pid)
            deadline = time.perf_counter() + 5
            while self._rc() is None and time.perf_counter() < deadline:
                time.sleep(0.01)

    def _collect(self) -> None:
        """Copy what the candidate wrote back to ``workdir`` and remove its directory."""
        for n in RESULT_FILES:
            dst = os.path.join(self.workdir, n)
            if os.path.lexists(dst):
                os.remove(dst)
            _copy_out(os.path.join(self.cand, n), dst)
        shutil.rmtree(self._own_root or self.cand, ignore_errors=True)
        if self._own_root in _ROOTS:
            _ROOTS.remove(self._own_root)
        if self.cgroup is not None:
            self.cgroup.remove()

    def wait(self) -> dict:
        while not self.poll():
            self.pause()
        wall = time.perf_counter() - self.t0
        rc = self._rc()
        if self.proc is not None:
            self._out.close()
        self.phases["waited"] = time.perf_counter()
        self._collect()
        self.phases["collected"] = time.perf_counter()
        try:
            raw = open(os.path.join(self.workdir, "output.txt"), "rb").read().decode("utf-8", "replace")
        except OSError:
            raw = ""
        run = {}
        try:
            run = json.load(open(os.path.join(self.workdir, "run.json")))
            if not isinstance(run, dict):
                run = {}
        except (OSError, ValueError):
            pass
        res = {"exit_code": rc, "wall_seconds": wall, "output": truncate(raw), "run": run, "workdir": self.workdir,
               "launcher": "zygote" if self.proc is None else "process",
               "phases": {**self.phases, **{k: v for k, v in (run.get("phases") or {}).items() if isinstance(v, (int, float))}}}
        if self.timed_out:
            res["error"] = f"timed out: wall-clock limit of {self.timeout:g}s reached, the process was killed"
        elif rc == 0 and run.get("ok"):
            res["error"] = None
        else:
            res["error"] = failure_reason(raw, run, rc)
        return res


def failure_reason(output: str, run: dict, rc) -> str:
    err = str(run.get("error") or "")
    if "sandbox: " not in err:
        err = next((l for l in reversed(output.splitlines()) if "SandboxViolation: sandbox: " in l), err)
    if "sandbox: " in err:
        return err.split("sandbox: ", 1)[1].strip()[:300]
    if "MemoryError" in output or err == "memory limit exceeded" or (rc in (-9, 137) and not run):
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
                  zygote: Zygote | None = None, audit_hook: bool = True, save_model: bool = True) -> dict:
    return Running(code, workdir, data_dir, timeout=timeout, mem_mb=mem_mb, zygote=zygote, audit_hook=audit_hook,
                   save_model=save_model).wait()
