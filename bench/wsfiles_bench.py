"""What carrying a step's workspace files with the run (runtime/wsfiles.py) costs on a local run.

    python bench/wsfiles_bench.py [--rounds 3] [--mb 1.0] [--files 16]

One invocation, real Metaflow runs on the local datastore in a temp workspace: a two-step flow whose start step
writes a deploy-stage-sized directory (one ``--mb`` MiB file, like model.pkl, plus ``--files`` small ones) under
``artifacts/``, with and without ``wsfiles.keep`` (the reference), rounds alternated. Then what the bridge adds after
the run: ``wsfiles.materialize(run)`` with every file already here (index read + hashing, nothing rewritten), against
the read the bridge makes anyway (``run.data.loom_result``-style: one small artifact through the Client)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.path.join(HERE, "..", "py")

FLOW = r'''
import os
from metaflow import FlowSpec, Parameter, current, step


class WsBench(FlowSpec):
    keep = Parameter("keep", default=False, type=bool)
    mb = Parameter("mb", default=1.0, type=float)
    files = Parameter("files", default=16, type=int)

    @step
    def start(self):
        d = os.path.join(os.environ["LOOM_WORKSPACE_DIR"], "artifacts", "bench", str(current.run_id))
        os.makedirs(os.path.join(d, "model"), exist_ok=True)
        with open(os.path.join(d, "model", "model.pkl"), "wb") as f:
            f.write(os.urandom(int(self.mb * (1 << 20))))
        for i in range(self.files):
            with open(os.path.join(d, "model", f"f{i}.txt"), "w") as f:
                f.write("x" * 2000)
        self.small = {"ok": True}
        if self.keep:
            from loom_py.runtime import wsfiles

            wsfiles.keep(self, d)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WsBench()
'''


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=16)
    a = ap.parse_args()
    ws = tempfile.mkdtemp(prefix="loom-wsbench-")
    flow = os.path.join(ws, "ws_bench_flow.py")
    with open(flow, "w") as f:
        f.write(FLOW)
    env = {**os.environ, "METAFLOW_USER": "loom", "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
           "METAFLOW_DATASTORE_SYSROOT_LOCAL": ws, "LOOM_WORKSPACE_DIR": ws,
           "PYTHONPATH": os.path.abspath(PY) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    times: dict[bool, list[float]] = {False: [], True: []}
    run_ids: dict[bool, str] = {}
    for _ in range(a.rounds):
        for keep in (False, True):
            rid = os.path.join(ws, "rid")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, flow, "--quiet", "--no-pylint", "run", "--run-id-file", rid, "--keep", str(keep),
                            "--mb", str(a.mb), "--files", str(a.files)], env=env, cwd=ws, check=True, capture_output=True)
            times[keep].append(time.perf_counter() - t0)
            run_ids[keep] = open(rid).read().strip()
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    sys.path.insert(0, os.path.abspath(PY))
    from metaflow import Run, namespace

    from loom_py.runtime import wsfiles

    namespace(None)
    mat, base = [], []
    for _ in range(5):
        run = Run(f"WsBench/{run_ids[True]}")  # a fresh Client object each time, as the bridge makes
        t0 = time.perf_counter()
        got = wsfiles.materialize(run)
        mat.append(time.perf_counter() - t0)
        assert got["files"] == a.files + 1 and not got["restored"], got
        run = Run(f"WsBench/{run_ids[True]}")
        t0 = time.perf_counter()
        _ = run.data.small
        base.append(time.perf_counter() - t0)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    out = {"stage": f"{a.mb} MiB + {a.files} × 2 KB", "rounds": a.rounds, "load_avg": os.getloadavg()[0],
           "run_s_without_keep": round(med(times[False]), 3), "run_s_with_keep": round(med(times[True]), 3),
           "run_added_s": round(med(times[True]) - med(times[False]), 3),
           "run_ratio": round(med(times[True]) / med(times[False]), 3),
           "bridge_materialize_ms": round(med(mat) * 1000, 1), "bridge_one_artifact_read_ms": round(med(base) * 1000, 1),
           "all_run_s": {"without": [round(x, 3) for x in times[False]], "with": [round(x, 3) for x in times[True]]}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
