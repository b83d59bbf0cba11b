"""eda's overhead on a small table: EdaFlow on 6,000 rows x 20 columns against a bare two-step Metaflow
flow with one card, both as real runs through the bridge (the way the CLI runs them), interleaved,
median of N repetitions. Goal: ratio <= 1.3.

usage: .venv/bin/python bench/eda_overhead.py [REPS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bridge import LAST_CPU, ROOT, bridge  # noqa: E402


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sys.path.insert(0, os.path.join(ROOT, "py"))
    import eda_data

    tmp = tempfile.mkdtemp(prefix="eda-overhead-")
    path = os.path.join(tmp, "small.parquet")
    eda_data.make(6000).to_parquet(path, index=False)
    ws = os.path.join(tmp, "ws")
    ing, _ = bridge(ws, {"mode": "flow", "flow": "ingest_flow.py", "flow_name": "IngestDataset",
                         "params": {"source": path}, "prepare": "loom_py.verbs.ingest:prepare"})
    ds = ing["pathspec"]
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    eda_t, bare_t, eda_c, bare_c = [], [], [], []
    for i in range(reps):
        _, w = bridge(ws, {"mode": "flow", "flow": "bare_card_flow.py", "flow_name": "BareCardFlow", "params": {"dataset": ds}},
                      flows_dir=bench_dir)
        bare_t.append(w)
        bare_c.append(LAST_CPU[0])
        out, w = bridge(ws, {"mode": "flow", "flow": "eda_flow.py", "flow_name": "EdaFlow",
                             "params": {"dataset": ds, "target": "target"}, "prepare": "loom_py.verbs.eda:prepare"})
        eda_t.append(w)
        eda_c.append(LAST_CPU[0])
        print(f"rep {i + 1}: bare {bare_t[-1]:.2f} s wall / {bare_c[-1]:.2f} s cpu, eda {eda_t[-1]:.2f} s wall / {eda_c[-1]:.2f} s cpu "
              f"({out['status']}, {len(out['summary']['leakage_flags'])} flags)")
    me, mb = statistics.median(eda_t), statistics.median(bare_t)
    ce, cb = statistics.median(eda_c), statistics.median(bare_c)
    print(f"load average now: {os.getloadavg()[0]:.1f} (wall times inflate on a busy machine; CPU seconds less so)")
    print(f"6,000 rows x 20 columns, {reps} interleaved reps, cpu cores {os.cpu_count()}")
    print(f"median wall: eda {me:.2f} s, bare two-step flow with one card {mb:.2f} s; ratio eda/bare = {me / mb:.2f} (goal <= 1.3: "
          f"{'PASS' if me / mb <= 1.3 else 'MISS'})")
    print(f"median CPU seconds (all processes of the run): eda {ce:.2f}, bare {cb:.2f}; ratio = {ce / cb:.2f}")


if __name__ == "__main__":
    main()
