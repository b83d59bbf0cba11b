"""Decision 0001: how the bridge launches a flow. Metaflow's Runner API vs the CLI with a run-id file,
each measured end to end in a fresh Python process (import + launch + read the result through the
Client API), alternated. Usage: python bench/runner_vs_cli.py [--rounds 5]"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, loom_python, median, workspace  # noqa: E402

FLOW = os.path.join(ROOT, "bench", "bare_flow.py")
RUNNER = f"""
from metaflow import Runner, namespace
with Runner({FLOW!r}, show_output=False).run() as r:
    namespace(None)
    assert r.run.successful
"""
CLI = f"""
import subprocess, sys, tempfile, os
from metaflow import Run, namespace
d = tempfile.mkdtemp()
subprocess.run([sys.executable, {FLOW!r}, "--quiet", "--no-pylint", "run", "--run-id-file", d + "/id"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
namespace(None)
assert Run("BareFlow/" + open(d + "/id").read()).successful
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    ws = workspace()
    env = dict(os.environ, METAFLOW_USER="bench", METAFLOW_DEFAULT_METADATA="local", METAFLOW_DEFAULT_DATASTORE="local",
               METAFLOW_DATASTORE_SYSROOT_LOCAL=ws)
    times = {"runner": [], "cli": []}
    for _ in range(a.rounds):
        for name, code in (("runner", RUNNER), ("cli", CLI)):
            t0 = time.perf_counter()
            subprocess.run([loom_python(), "-c", code], cwd=ws, env=env, check=True)
            times[name].append(time.perf_counter() - t0)
    r, c = median(times["runner"]), median(times["cli"])
    print(f"Runner API: median {r:.2f} s; CLI + run-id file: median {c:.2f} s; CLI/Runner = {c / r:.2f} over {a.rounds} alternated rounds")


if __name__ == "__main__":
    main()
