"""The attack suite: candidates written as an attacker would, run through the sandbox runner directly.

Each attack runs twice on the pre-forked launcher — with the OS sandbox alone (``audit_hook=False``: what
bubblewrap and the namespaces stop by themselves) and with both layers (the default) — and the process
launcher (one bubblewrap per candidate) where it matters. Each asserts that the attack failed AND that
nothing changed outside the candidate directory: a fake workspace (a data object, a seal, the staged data
under .loom/tmp as the search lays it out) is hashed before and after, and the host's /tmp, /dev/shm,
home directory and process table are checked for what the attack tried to leave behind.

The payloads print ``ATTACK {json}`` lines; the test reads them from the candidate's output.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import shutil
import stat
import time
import uuid

import pytest

from loom_py.verbs.optimize import sandbox

pytestmark = pytest.mark.skipif(sandbox.os_sandbox() is None, reason="no bubblewrap here (.ci/run installs it)")

SECRET = "sk-ant-canary-" + uuid.uuid4().hex[:12]
LABELS_MARK = "LABELS-" + uuid.uuid4().hex[:8]  # a string only the datastore's data object holds
MARK = uuid.uuid4().hex[:10]


def _tree_hash(root: str) -> dict:
    out = {}
    for d, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):  # a link, a fifo (never opened: it would block), a socket
                out[p] = f"mode:{st.st_mode:o}" + (":" + os.readlink(p) if stat.S_ISLNK(st.st_mode) else "")
                continue
            with open(p, "rb") as fh:
                out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A workspace as Loom lays it out: .loom/ with a data object and a seal, the search's staged data in
    .loom/tmp, a Unix socket like the warm image's in a private directory of the host's /tmp."""
    import pandas as pd
    from sklearn.datasets import load_iris

    os.environ["ANTHROPIC_API_KEY"] = SECRET  # in the test process: an ancestor of every candidate
    os.environ["LOOM_PROPOSER_URL"] = "http://127.0.0.1:9/" + SECRET
    ws = tmp_path_factory.mktemp("ws")
    loom = ws / ".loom"
    (loom / "IngestDataset" / "1" / "data").mkdir(parents=True)
    (loom / "IngestDataset" / "1" / "data" / "blob").write_text(f"{LABELS_MARK}\n1,0,1,1,0\n")
    (loom / "seal.json").write_text(json.dumps({"holdout": [1, 2, 3], "mark": LABELS_MARK}))
    X, y = load_iris(return_X_y=True, as_frame=True)
    tr = X.iloc[::2].copy()
    tr["target"] = y.iloc[::2].to_numpy()
    # staged as a search stages its folds: data/fold-1 is what the candidates here see; data/fold-2 (another fold,
    # with the labels of fold-1's held-out rows) must stay out of their view
    data = loom / "tmp" / "loom-opt-x" / "data" / "fold-1"
    sandbox.stage(str(data), tr, X.iloc[1::2], X.iloc[1::2], {"target": "target", "task": "classification"})
    other = X.iloc[1::2].copy()
    other["target"] = y.iloc[1::2].to_numpy()
    other[f"other_fold_{MARK}"] = 1.0
    sandbox.stage(str(data.parent / "fold-2"), other, X.iloc[::2], X.iloc[::2], {"target": "target", "task": "classification"})
    os.environ["LOOM_WORKSPACE_DIR"] = str(loom)
    warm_dir = tmp_path_factory.mktemp("warm")
    os.chmod(warm_dir, 0o700)
    warm_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    warm_path = os.path.join("/tmp", f"loom-warm-attack-{MARK}")
    os.makedirs(warm_path, mode=0o700)
    warm_sock.bind(os.path.join(warm_path, "s"))
    warm_sock.listen(4)
    warm_sock.setblocking(False)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    tcp.setblocking(False)
    z = sandbox.start_zygote(data_root=str(data.parent))  # as a search starts it: the staged folds bound read-only
    assert z is not None and z.confined and z.data_root, "the confined pre-forked launcher must start where bubblewrap runs"
    yield {"ws": str(ws), "loom": str(loom), "data": str(data), "warm": os.path.join(warm_path, "s"), "warm_sock": warm_sock,
           "tcp": tcp, "port": tcp.getsockname()[1], "zygote": z, "runs": tmp_path_factory.mktemp("runs")}
    z.close()
    warm_sock.close()
    tcp.close()
    import shutil

    shutil.rmtree(warm_path, ignore_errors=True)
    for k in ("ANTHROPIC_API_KEY", "LOOM_PROPOSER_URL", "LOOM_WORKSPACE_DIR"):
        os.environ.pop(k, None)


PRELUDE = '''
import json, os, sys
def out(name, **kw):
    print("ATTACK " + json.dumps({"name": name, **kw}, default=str), flush=True)
def attempt(name, fn):
    try:
        r = fn()
        out(name, ok=True, got=r)
    except BaseException as e:
        out(name, ok=False, error=f"{type(e).__name__}: {e}"[:300])
'''
MODEL = "\nfrom sklearn.linear_model import LogisticRegression\ndef make_model():\n    return LogisticRegression(max_iter=300)\n"


def run_attack(world, name: str, payload: str, *, hook: bool, launcher: str = "zygote", mem_mb: int = 1024,
               timeout: float = 30) -> tuple[dict, dict]:
    """Run the payload as a candidate; (results by attack name, the run's result)."""
    code = PRELUDE + payload.replace("@WS@", world["ws"]).replace("@LOOM@", world["loom"]).replace(
        "@DATA@", world["data"]).replace("@WARM@", world["warm"]).replace("@PORT@", str(world["port"])).replace(
        "@MARK@", MARK) + MODEL
    before = _tree_hash(world["ws"])
    shm_before = set(os.listdir("/dev/shm"))
    tmp_before = set(os.listdir("/tmp"))
    home_before = set(os.listdir(os.path.expanduser("~")))
    res = sandbox.run_candidate(code, str(world["runs"] / f"{name}-{launcher}-{hook}"), world["data"], timeout=timeout,
                                mem_mb=mem_mb, zygote=world["zygote"] if launcher == "zygote" else None, audit_hook=hook)
    assert res["launcher"] == launcher
    # nothing changed outside the candidate directory
    assert _tree_hash(world["ws"]) == before, "the workspace (datastore, seal, staged data) changed"
    # (other processes on this machine come and go in these directories: only what an attack names counts)
    ours = lambda names: [n for n in names if MARK in n or n.startswith("attack")]  # noqa: E731
    assert not ours(set(os.listdir("/dev/shm")) - shm_before), "something was left in the host's /dev/shm"
    assert not ours(set(os.listdir("/tmp")) - tmp_before), "something was left in the host's /tmp"
    assert not ours(set(os.listdir(os.path.expanduser("~"))) - home_before), "something was written to the home directory"
    assert SECRET not in res["output"] and LABELS_MARK not in res["output"], "a secret or the labels were read"
    got = {}
    for line in res["output"].splitlines():
        if line.startswith("ATTACK "):
            d = json.loads(line[7:])
            got[d["name"]] = d
    return got, res


LAYERS = pytest.mark.parametrize("hook", [False, True], ids=["os-sandbox-alone", "both-layers"])


@LAYERS
def test_network_sockets_and_ctypes_reach_nothing(world, hook):
    payload = '''
import socket, ctypes
attempt("tcp-host-loopback", lambda: socket.create_connection(("127.0.0.1", @PORT@), timeout=2).close())
attempt("tcp-internet", lambda: socket.create_connection(("93.184.216.34", 80), timeout=2).close())
attempt("dns", lambda: socket.getaddrinfo("example.com", 80))
def raw():
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(2, 1, 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "socket")
    import struct
    addr = struct.pack("!HH4s8x", 2, @PORT@, bytes([127, 0, 0, 1]))
    sa = ctypes.create_string_buffer(addr)
    # sockaddr_in family is host order on Linux
    sa = ctypes.create_string_buffer(struct.pack("=H", 2) + struct.pack("!H", @PORT@) + bytes([127, 0, 0, 1]) + bytes(8))
    r = libc.connect(fd, sa, 16)
    if r != 0:
        raise OSError(ctypes.get_errno(), "connect")
    return "connected"
attempt("ctypes-connect", raw)
'''
    got, _ = run_attack(world, "net", payload, hook=hook)
    for k in ("tcp-host-loopback", "tcp-internet", "dns", "ctypes-connect"):
        assert got[k]["ok"] is False, got[k]
    with pytest.raises(BlockingIOError):
        world["tcp"].accept()  # the host's loopback server saw no connection


@LAYERS
@pytest.mark.parametrize("launcher", ["zygote", "process"])
def test_writes_outside_by_every_path_change_nothing(world, hook, launcher):
    payload = '''
import sqlite3, stat
def chdir_then_write():
    for _ in range(12):
        os.chdir("..")
    os.chdir("@LOOM@/IngestDataset/1/data")
    with open("blob", "w") as f:
        f.write("0,1,0,0,1")
attempt("relative-after-chdir", chdir_then_write)
def chdir_up_write():
    os.chdir("/loom/work")
    for _ in range(6):
        os.chdir("..")
    open("attack-@MARK@", "w").write("x")
    return os.getcwd()
attempt("relative-up", chdir_up_write)
def dirfd():
    fd = os.open("@LOOM@", os.O_RDONLY)
    w = os.open("seal.json", os.O_WRONLY | os.O_TRUNC, dir_fd=fd)
    os.write(w, b"{}")
attempt("dir_fd", dirfd)
attempt("fifo", lambda: os.mkfifo("@LOOM@/fifo-@MARK@"))
attempt("sqlite", lambda: sqlite3.connect("@LOOM@/attack.db").execute("create table t(x)"))
attempt("absolute", lambda: open("@LOOM@/IngestDataset/1/data/blob", "a").write("poison"))
attempt("staged-data", lambda: open("@DATA@/train.arrow", "ab").write(b"poison"))
def hardlink():
    os.link("/loom/work/train.arrow", "/loom/work/t2")  # a read-only mount of the staged file: no link across it
    os.chmod("/loom/work/t2", 0o644)
    open("/loom/work/t2", "ab").write(b"poison")
    return "linked and changed"
attempt("hardlink", hardlink)
attempt("link-out", lambda: os.link("/loom/work/train.arrow", "@DATA@/x"))
attempt("home", lambda: open(os.path.expanduser("~/attack-@MARK@"), "w").write("x"))
attempt("root-home", lambda: open("/root/attack-@MARK@", "w").write("x"))
attempt("host-tmp", lambda: open("/tmp/attack-@MARK@", "w").write("x"))
attempt("dev-shm", lambda: open("/dev/shm/attack-@MARK@", "w").write("x" * 1000))
attempt("usr", lambda: open("/usr/attack-@MARK@", "w").write("x"))
attempt("venv", lambda: open(os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "attack-@MARK@"), "w").write("x"))
def remount_usr():  # capabilities left in the sandbox (bubblewrap run by root keeps them unless dropped) would allow it
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(None, b"/usr", None, 32 | 4096, None) != 0:  # MS_REMOUNT | MS_BIND, writable
        raise OSError(ctypes.get_errno(), "mount")
    open("/usr/attack-@MARK@", "w").write("x")
attempt("remount-usr", remount_usr)
'''
    got, _ = run_attack(world, "write", payload, hook=hook, launcher=launcher)
    for k in ("relative-after-chdir", "dir_fd", "fifo", "sqlite", "absolute", "staged-data", "hardlink", "link-out",
              "root-home", "usr", "venv", "remount-usr"):
        assert got[k]["ok"] is False, got[k]
    # inside the sandbox these succeed, in its own private /tmp, /dev/shm and home (/work): the host sees nothing
    # (run_attack checked /tmp, /dev/shm, ~ and the workspace)
    assert not glob.glob(f"/tmp/attack-{MARK}*") and not os.path.exists(f"/attack-{MARK}")
    venv = os.path.dirname(os.path.dirname(__import__("sys").executable))
    assert not os.path.exists(f"/usr/attack-{MARK}") and not os.path.exists(os.path.join(venv, f"attack-{MARK}"))
    assert not os.path.exists(f"/root/attack-{MARK}")
    # the next candidate sees the original staged data
    got2, res2 = run_attack(world, "after-write", 'import hashlib\nout("train", h=hashlib.sha256(open("train.arrow","rb").read()).hexdigest())\n',
                            hook=True)
    assert got2["train"]["h"] == hashlib.sha256(open(os.path.join(world["data"], "train.arrow"), "rb").read()).hexdigest()


@LAYERS
@pytest.mark.parametrize("launcher", ["zygote", "process"])
def test_the_staged_data_every_candidate_shares_cannot_be_changed_or_widened(world, hook, launcher):
    """The staged fold is written once per search and bound read-only into each candidate's directory (not
    copied per fit): every way to change it through its own directory fails, and another fold's data (which
    holds the labels of this fold's held-out rows) is not in view."""
    payload = '''
import mmap, glob
T = "/loom/work/train.arrow"
def append():
    with open(T, "ab") as f:
        f.write(b"poison")
attempt("append", append)
attempt("truncate", lambda: os.truncate(T, 0))
def chmod_write():
    os.chmod(T, 0o666)
    open(T, "r+b").write(b"poison")
attempt("chmod-write", chmod_write)
attempt("rename", lambda: os.rename(T, "/loom/work/moved"))
attempt("unlink", lambda: os.unlink(T))
attempt("replace", lambda: os.replace("/loom/work/solution.py", T))
def shared_map():
    fd = os.open(T, os.O_RDWR)
    m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_WRITE)
    m[:6] = b"poison"
    m.flush()
attempt("mmap-shared-write", shared_map)
def ro_map():
    fd = os.open(T, os.O_RDONLY)
    m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[:6] = b"poison"
attempt("mmap-ro-fd", ro_map)
def remount():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.mount(None, T.encode(), None, 32 | 4096, None)  # MS_REMOUNT | MS_BIND, without MS_RDONLY
    if rc != 0:
        raise OSError(ctypes.get_errno(), "mount")
    open(T, "ab").write(b"poison")
attempt("remount-rw", remount)
def other_fold():
    hits = []
    for d, _, fs in os.walk("/"):
        if d.startswith(("/proc", "/sys", "/usr", "/etc")):
            continue
        hits += [os.path.join(d, f) for f in fs if f.endswith(".arrow") and not d.startswith("/loom/work")]
    return hits + glob.glob("/loom/data/*") + glob.glob("/loom/sandbox/*")
attempt("other-fold", other_fold)
def reads():
    import pyarrow.ipc
    return [n for n in pyarrow.ipc.open_file(T).schema.names if "other_fold" in n]
attempt("read-own", reads)
'''
    staged = _tree_hash(os.path.dirname(world["data"]))
    got, res = run_attack(world, f"staged-{launcher}", payload, hook=hook, launcher=launcher)
    for k in ("append", "truncate", "chmod-write", "rename", "unlink", "replace", "mmap-shared-write", "mmap-ro-fd",
              "remount-rw"):
        assert got[k]["ok"] is False, got[k]
    assert got["other-fold"]["ok"] and got["other-fold"]["got"] == [], got["other-fold"]
    assert got["read-own"]["ok"] and got["read-own"]["got"] == [], got["read-own"]  # its own fold, readable
    assert _tree_hash(os.path.dirname(world["data"])) == staged
    assert res["error"] is None, res  # the attempts failed; the candidate itself still fit and predicted


@LAYERS
def test_datastore_seal_and_secrets_are_not_in_view(world, hook):
    payload = '''
def scan():
    seen = []
    for top in ("/", "/loom/work/..", "/tmp", "/root", "/home", "/var", "/run"):
        try:
            seen.append((top, sorted(os.listdir(top))[:50]))
        except OSError as e:
            seen.append((top, str(e)))
    return seen
attempt("listing", scan)
attempt("read-blob-absolute", lambda: open("@LOOM@/IngestDataset/1/data/blob").read())
attempt("read-seal", lambda: open("@LOOM@/seal.json").read())
attempt("read-relative", lambda: open("../../../.loom/seal.json").read())
def walk():
    hits = []
    for d, _, fs in os.walk("/"):
        if d.startswith(("/proc", "/sys", "/usr", "/etc")):
            continue
        for f in fs:
            if f in ("blob", "seal.json") or "loom-warm" in d:
                hits.append(os.path.join(d, f))
    return hits
attempt("walk", walk)
attempt("own-dir", lambda: sorted(os.listdir("/loom/work")))
attempt("env", lambda: {k: v for k, v in os.environ.items()})
'''
    got, _ = run_attack(world, "read", payload, hook=hook)
    for k in ("read-blob-absolute", "read-seal", "read-relative"):
        assert got[k]["ok"] is False, got[k]
    assert got["walk"]["ok"] and got["walk"]["got"] == [], got["walk"]
    assert set(got["own-dir"]["got"]) <= {"solution.py", "task.json", "train.arrow", "val_features.arrow",
                                          "test_features.arrow", "tmp", "output.txt"}
    env = got["env"]["got"]
    assert not any(k.startswith(("ANTHROPIC", "OPENAI", "LOOM_PROPOSER", "LOOM_WARM", "LOOM_WORKSPACE", "METAFLOW"))
                   for k in env), env
    listing = dict((t, v) for t, v in got["listing"]["got"])
    assert "home" not in listing["/"] and "workspace" not in str(listing["/"])


@LAYERS
def test_proc_shows_no_ancestor_and_no_socket_is_reachable(world, hook):
    payload = '''
import socket, glob
def procs():
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    found = {}
    for p in pids:
        try:
            found[p] = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\\0", b" ").decode()[:120]
            env = open(f"/proc/{p}/environ", "rb").read()
            if b"sk-ant" in env or b"PROPOSER" in env:
                found[p] += " ENV-LEAK"
        except OSError:
            pass
    return {"pids": pids, "ppid": os.getppid(), "cmd": found}
attempt("proc", procs)
def warm():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("@WARM@")
    return "connected"
attempt("warm-socket", warm)
attempt("warm-glob", lambda: glob.glob("/tmp/loom-warm*") + glob.glob("/tmp/*/s"))
attempt("fds", lambda: sorted(int(f) for f in os.listdir("/proc/self/fd")))
def zygote_pipe():
    import ctypes
    return [os.readlink(f"/proc/1/fd/{f}") for f in os.listdir("/proc/1/fd")]
attempt("pid1-fds", zygote_pipe)
'''
    got, _ = run_attack(world, "proc", payload, hook=hook)
    proc = got["proc"]["got"]
    assert proc["pids"][0] == 1 and max(proc["pids"]) < 50, proc  # its own PID namespace: only itself
    assert proc["ppid"] == 0
    assert not any("ENV-LEAK" in c or "pytest" in c or "bwrap" in c for c in proc["cmd"].values()), proc
    assert got["warm-socket"]["ok"] is False
    assert got["warm-glob"]["got"] == []
    assert set(got["fds"]["got"]) <= {0, 1, 2, 3}, got["fds"]  # 3: the listing's own
    with pytest.raises(BlockingIOError):
        world["warm_sock"].accept()  # the warm-image-like socket saw no connection


@LAYERS
@pytest.mark.parametrize("launcher", ["zygote", "process"])
def test_forked_and_setsid_children_die_with_the_candidate(world, hook, launcher):
    payload = '''
def spawn():
    import ctypes
    n = 0
    for i in range(30):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                try:
                    os.execv("/bin/sleep", ["/bin/sleep", "300.@SLEEP@"])
                finally:
                    os._exit(0)
            os._exit(0)
        n += 1
    return n
attempt("fork-setsid", spawn)
'''.replace("@SLEEP@", str(int(time.time() * 1000) % 1000000))
    marker = payload.split("300.")[1].split('"')[0]
    got, _ = run_attack(world, f"fork-{marker}", payload, hook=hook, launcher=launcher)
    if hook:
        assert got["fork-setsid"]["ok"] is False and "refused" in got["fork-setsid"]["error"]
    deadline = time.time() + 5
    while True:
        alive = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if f"300.{marker}".encode() in open(f"/proc/{p}/cmdline", "rb").read():
                        alive.append(p)
                except OSError:
                    pass
        if not alive or time.time() > deadline:
            break
        time.sleep(0.1)
    assert alive == [], f"{len(alive)} children of the candidate outlived it"


@LAYERS
def test_shared_memory_bombs_are_bounded(world, hook):
    payload = '''
import mmap
def shared_map():
    m = mmap.mmap(-1, 3 << 30, flags=mmap.MAP_SHARED)
    for i in range(0, 3 << 30, 1 << 20):
        m[i] = 1
    return "3 GiB shared map touched"
attempt("mmap-shared", shared_map)
def shm_file():
    with open("/dev/shm/attack-@MARK@", "wb") as f:
        for _ in range(2048):
            f.write(b"x" * (1 << 20))
    return "2 GiB in /dev/shm"
attempt("dev-shm-fill", shm_file)
def tmp_fill():
    with open("/tmp/attack-@MARK@", "wb") as f:
        for _ in range(2048):
            f.write(b"x" * (1 << 20))
attempt("tmp-fill", tmp_fill)
'''
    got, res = run_attack(world, "shm", payload, hook=hook, mem_mb=512)
    assert got["mmap-shared"]["ok"] is False, got["mmap-shared"]
    assert got["dev-shm-fill"]["ok"] is False, got["dev-shm-fill"]  # the private /dev/shm is 64 MiB
    assert got["tmp-fill"]["ok"] is False, got["tmp-fill"]
    assert not glob.glob(f"/dev/shm/attack-{MARK}*")


def test_validate_fits_a_model_written_solution_only_in_the_sandbox(world):
    """validate's fits of a search's solution (SandboxedSolution): the same predictions as fitting the same
    code by hand, while the code's attack at import time (the key, the datastore, a write) finds nothing."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from loom_py.verbs.solution import SandboxedSolution

    code = ('import os, sys\nfound = [k for k, v in os.environ.items() if "sk-ant" in v]\n'
            'try:\n    open("@LOOM@/seal.json", "a").write("x")\n    wrote = True\nexcept Exception:\n    wrote = False\n'
            'print("ATTACK", found, wrote, os.path.exists("@LOOM@"))\n'
            'from sklearn.linear_model import LogisticRegression\n'
            'def make_model():\n    return LogisticRegression(max_iter=500)\n').replace("@LOOM@", world["loom"])
    X, y = load_iris(return_X_y=True, as_frame=True)
    y = pd.Series(np.array(["setosa", "versicolor", "virginica"], dtype=object)[y])
    before = _tree_hash(world["ws"])
    sol = SandboxedSolution("OptimizeFlow/1", code, timeout=60, mem_mb=1024)
    try:
        labels, proba, classes = sol.fit_predict("classification", X.iloc[::2], y.iloc[::2], X.iloc[1::2])
    finally:
        sol.close()
    assert _tree_hash(world["ws"]) == before
    ref = LogisticRegression(max_iter=500).fit(X.iloc[::2], y.iloc[::2])
    assert list(labels) == list(ref.predict(X.iloc[1::2]))
    assert classes == list(ref.classes_)
    assert np.allclose(proba, ref.predict_proba(X.iloc[1::2]), atol=1e-9)
    assert "solution" not in __import__("sys").modules or not hasattr(__import__("sys").modules["solution"], "found")


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed: there is no OS sandbox to test")
def test_a_python_under_the_hosts_tmp_still_runs_inside_the_sandbox(tmp_path):
    """A checkout (and its Loom environment) under /tmp: the sandbox's private /tmp must not hide the interpreter.
    The command is built by an interpreter that itself lives under /tmp, as in a CI clone there."""
    import subprocess
    import sys
    import tempfile

    venv = tempfile.mkdtemp(prefix="loom-venv-under-tmp-", dir="/tmp")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, capture_output=True)
        py = os.path.join(venv, "bin", "python")
        probe = ("import subprocess, sys; from loom_py.verbs.optimize import sandbox; "
                 "r = subprocess.run(sandbox.bwrap_command([]) + [sys.executable, '-I', '-c', 'import json, sys; print(sys.prefix)'], "
                 "capture_output=True, text=True); print(r.returncode, r.stdout.strip(), r.stderr.strip()[-200:])")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out = subprocess.run([py, "-c", probe], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": root})
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[:2] == ["0", venv], out.stdout
    finally:
        shutil.rmtree(venv, ignore_errors=True)
