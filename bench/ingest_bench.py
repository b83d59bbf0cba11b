"""Issue 2 measurements.

1. `loom --help` start-up time (goal < 100 ms).
2. `loom ingest` of a 6,000-row CSV against a bare two-step Metaflow flow with the same interpreter,
   alternated, as a ratio of medians (goal <= 1.3).
3. ingest of a 1,000,000-row x 20-column CSV: wall time and peak memory of any process in the tree
   (goal: < 30 s, < 2 GiB).

Usage: python bench/ingest_bench.py [--rounds 5] [--skip-big]
"""
import argparse
import csv
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LOOM, bare_flow, median, timed, workspace  # noqa: E402


def write_csv(path, rows, cols):
    rnd = random.Random(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"c{i}" for i in range(cols)])
        cats = ["alpha", "beta", "gamma", "delta"]
        for r in range(rows):
            w.writerow([r if i == 0 else (cats[rnd.randrange(4)] if i % 5 == 0 else round(rnd.random() * 100, 3)) for i in range(cols)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-big", action="store_true")
    a = ap.parse_args()

    helps = []
    for _ in range(20):
        t0 = time.perf_counter()
        subprocess.run([LOOM, "--help"], stdout=subprocess.DEVNULL)
        helps.append(time.perf_counter() - t0)
    print(f"loom --help: median {median(helps) * 1000:.1f} ms over 20 (goal < 100 ms)")

    ws = workspace()
    src = os.path.join(ws, "six_thousand.csv")
    write_csv(src, 6000, 10)
    loom_t, bare_t = [], []
    for i in range(a.rounds):
        dt, _ = timed([LOOM, "ingest", "--source", src, "--json", "--quiet"], cwd=ws)
        loom_t.append(dt)
        bare_t.append(bare_flow(ws))
    ratio = median(loom_t) / median(bare_t)
    print(f"ingest 6,000 rows: loom median {median(loom_t):.2f} s, bare 2-step flow median {median(bare_t):.2f} s, "
          f"ratio {ratio:.2f} (goal <= 1.3) over {a.rounds} alternated rounds")

    if not a.skip_big:
        big = os.path.join(ws, "million.csv")
        t0 = time.perf_counter()
        write_csv(big, 1_000_000, 20)
        print(f"(wrote 1,000,000 x 20 CSV, {os.path.getsize(big) / 2**20:.0f} MiB, in {time.perf_counter() - t0:.1f} s)")
        p = subprocess.run(["/usr/bin/time", "-f", "%e %M", LOOM, "ingest", "--source", big, "--json", "--quiet"],
                           cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall, rss_kib = p.stderr.strip().splitlines()[-1].split()
        # /usr/bin/time reports the loom process; the Python children's peak is read from their own rusage
        print(f"ingest 1,000,000 x 20: wall {float(wall):.1f} s (goal < 30 s), exit {p.returncode}")
        kids = subprocess.run([sys.executable, "-c", f"""
import resource, subprocess
subprocess.run([{LOOM!r}, "ingest", "--source", {big!r}, "--json", "--quiet"], cwd={ws!r}, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"""], stdout=subprocess.PIPE, text=True)
        print(f"  peak memory of any process in the tree: {int(kids.stdout.strip()) / 1024:.0f} MiB (goal < 2048 MiB)")


if __name__ == "__main__":
    main()
