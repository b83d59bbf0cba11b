"""eda at scale: 1,000,000 rows x 20 columns (bench/eda_data.py).

Prints, in one invocation:
  1. loom eda's profile (pure function: load Parquet, profile, the card's chart specs) in a fresh process:
     wall time and peak RSS;
  2. the same as a real EdaFlow run through the bridge (the data object ingested first, not timed);
  3. ydata-profiling's minimal mode (ProfileReport(minimal=True).to_json()) on the same table in a fresh
     process with its own venv (YDATA_PYTHON, default /tmp/ydata-venv/bin/python), wall time and peak RSS;
  and the ratios. Goals: eda under 15 s and 2 GiB, at least 5x faster than ydata minimal.

usage: .venv/bin/python bench/eda_scale.py [ROWS] [--skip-ydata]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bridge import PY, ROOT, bridge  # noqa: E402

CHILD = r'''
import json, resource, sys, time
t0 = time.perf_counter()
{body}
print(json.dumps({{"wall": time.perf_counter() - t0, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}}))
'''

LOOM_BODY = r'''
import os
os.environ.setdefault("MPLBACKEND", "Agg")
import pandas as pd
from loom_py.verbs import eda
df = pd.read_parquet(sys.argv[1])
s = eda.profile(df, "target")
charts = eda.card_charts(df, s)
extra = {"flags": len(s["leakage_flags"]), "sampling": s["sampling"], "alerts": len(s["alerts"])}
'''

YDATA_BODY = r'''
import warnings; warnings.filterwarnings("ignore")
import pandas as pd
from ydata_profiling import ProfileReport
df = pd.read_parquet(sys.argv[1])
js = ProfileReport(df, minimal=True, progress_bar=False).to_json()
extra = {"json_chars": len(js)}
'''


def child(python: str, body: str, path: str, env=None) -> dict:
    p = subprocess.run([python, "-c", CHILD.format(body=body), path], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"child failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = int(next((a for a in sys.argv[1:] if a.isdigit()), 1_000_000))
    skip_ydata = "--skip-ydata" in sys.argv
    sys.path.insert(0, os.path.join(ROOT, "py"))
    import eda_data

    tmp = tempfile.mkdtemp(prefix="eda-bench-")
    path = os.path.join(tmp, f"bench_{rows}.parquet")
    eda_data.make(rows).to_parquet(path, index=False)
    print(f"data: {rows:,} rows x 20 columns -> {path} ({os.path.getsize(path) / 2**20:.1f} MiB Parquet)")
    print(f"cpu cores: {os.cpu_count()}")

    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "py"), MPLBACKEND="Agg")
    loom = child(PY, LOOM_BODY, path, env)
    print(f"loom eda profile (fresh process, load+profile+card charts): {loom['wall']:.2f} s, peak RSS {loom['maxrss_mib']:.0f} MiB; "
          f"flags={loom['flags']} alerts={loom['alerts']}")
    for s in loom["sampling"]:
        print(f"  sampling: {s}")

    ws = os.path.join(tmp, "ws")
    ing, _ = bridge(ws, {"mode": "flow", "flow": "ingest_flow.py", "flow_name": "IngestDataset",
                         "params": {"source": path}, "prepare": "loom_py.verbs.ingest:prepare"})
    t = time.perf_counter()
    out, wall = bridge(ws, {"mode": "flow", "flow": "eda_flow.py", "flow_name": "EdaFlow",
                            "params": {"dataset": ing["pathspec"], "target": "target"}, "prepare": "loom_py.verbs.eda:prepare"})
    import resource

    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"loom eda as a real EdaFlow run via the bridge ({out['pathspec']}): {wall:.2f} s wall end to end "
          f"(flow {out['flow_seconds']:.2f} s), peak RSS of any process so far {rss:.0f} MiB")

    if skip_ydata:
        return
    ypy = os.environ.get("YDATA_PYTHON", "/tmp/ydata-venv/bin/python")
    if not os.path.exists(ypy):
        print(f"ydata-profiling: no interpreter at {ypy} (python -m venv /tmp/ydata-venv && /tmp/ydata-venv/bin/pip install ydata-profiling pyarrow)")
        return
    yd = child(ypy, YDATA_BODY, path)
    print(f"ydata-profiling minimal (fresh process, load+profile+to_json): {yd['wall']:.2f} s, peak RSS {yd['maxrss_mib']:.0f} MiB")
    print(f"ratio ydata_minimal / loom_profile = {yd['wall'] / loom['wall']:.1f}x faster (goal >= 5x); "
          f"ydata_minimal / loom_EdaFlow_end_to_end = {yd['wall'] / wall:.1f}x")
    print(f"goals: loom profile < 15 s: {'PASS' if loom['wall'] < 15 else 'MISS'}; < 2 GiB: {'PASS' if loom['maxrss_mib'] < 2048 else 'MISS'}")


if __name__ == "__main__":
    main()
