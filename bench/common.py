"""Shared bench helpers: run build/loom and the bare reference flow with the same interpreter."""
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOM = os.path.join(ROOT, "build", "loom")


def loom_python() -> str:
    if os.environ.get("LOOM_PYTHON"):
        return os.environ["LOOM_PYTHON"]
    home = os.environ.get("LOOM_HOME") or os.path.expanduser("~/.local/share/loom")
    return os.path.join(home, "venv", "bin", "python")


def timed(cmd, cwd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return dt, p


def bare_flow(ws_root: str) -> float:
    env = dict(os.environ, METAFLOW_USER="bench", METAFLOW_DEFAULT_METADATA="local", METAFLOW_DEFAULT_DATASTORE="local",
               METAFLOW_DATASTORE_SYSROOT_LOCAL=os.path.join(ws_root, ".bare"))
    os.makedirs(os.path.join(ws_root, ".bare"), exist_ok=True)
    dt, _ = timed([loom_python(), os.path.join(ROOT, "bench", "bare_flow.py"), "--quiet", "--no-pylint", "run"],
                  cwd=os.path.join(ws_root, ".bare"), env=env)
    return dt


def peak_children_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2]


def workspace() -> str:
    return tempfile.mkdtemp(prefix="loom-bench-")
