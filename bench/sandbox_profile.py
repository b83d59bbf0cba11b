"""Where a sandboxed fit's time goes: every candidate fit of a short offline search (the same searches as
bench/optimize_overhead.py: breast_cancer and diabetes, 5-fold CV, so 5 concurrent sandboxed fits per node) is
timed phase by phase — Loom staging the candidate's directory, the launcher's fork, the namespaces, the boot
(limits, audit hook), reading the data, the candidate's code, its fit and predict (its own time), saving
predictions, pickling the model, the exit reaching Loom, Loom noticing, copying the results out — from the
monotonic timestamps the parent (sandbox.Running) and the sandboxed process (sandbox_boot.PHASES) record.

With the process launcher (process/bwrap, process/hook) there is no fork or confine mark, "boot" includes
importing numpy / pandas / pyarrow and "exec code" the candidate's own imports, in a fresh interpreter; "Loom
notices" is then part of "exit reaches Loom" (Loom polls the process).

Usage: .venv/bin/python bench/sandbox_profile.py [STEPS=6] [CONFIGS=zygote/bwrap,zygote/hook]
Prints the mean seconds per fit of each phase per config, and Loom's part (everything but fit + predict).
"""

import os
import statistics
import sys

from optimize_common import dev_test, load, loom_search, spec_for, use_sandbox

from loom_py.verbs.optimize import sandbox  # noqa: E402

# (label, from, to): consecutive marks; a phase whose marks are missing (the process launcher has no fork
# or confine marks) is counted in the next one that has both ends
PHASES = [("stage dir", "begin", "staged"), ("launcher answers", "staged", "started"),
          ("fork (to child)", "staged", "forked"), ("namespaces+mounts", "forked", "confined"),
          ("boot: limits, hook", "boot", "ready"), ("read data", "ready", "loaded"),
          ("exec code, make_model", "loaded", "made"), ("FIT (own)", "made", "fitted"),
          ("PREDICT (own)", "fitted", "predicted"), ("save predictions", "predicted", "saved"),
          ("pickle model", "saved", "pickled"), ("exit reaches Loom", "pickled", "ended"),
          ("Loom notices (waits)", "ended", "waited"), ("copy results out", "waited", "collected")]
OWN = ("FIT (own)", "PREDICT (own)")

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 6
configs = (sys.argv[2] if len(sys.argv) > 2 else "zygote/bwrap,zygote/hook").split(",")
seen: list = []
_wait = sandbox.Running.wait


def _recording_wait(self):
    res = _wait(self)
    seen.append(res.get("phases") or {})
    return res


sandbox.Running.wait = _recording_wait
table = {}
for config in configs:
    launcher, box = use_sandbox(config)
    seen.clear()
    for name in ("breast_cancer", "diabetes"):
        df = load(name)
        dev, _ = dev_test(df, spec_for(name)["task"])
        loom_search(dev, spec_for(name), steps=steps)
    fits = [p for p in seen if "collected" in p and "fitted" in p]
    row = {}
    for label, a, b in PHASES:
        row[label] = statistics.mean([p[b] - p[a] for p in fits if a in p and b in p] or [0.0])
    # the boot begins where the child's (or the process's) own clock starts: after confine / interpreter start
    row["(start → boot)"] = statistics.mean([p["boot"] - p["started"] for p in fits if "boot" in p and "started" in p])
    total = statistics.mean([p["collected"] - p["begin"] for p in fits])
    own = statistics.mean([p["fitted"] - p["made"] + p["predicted"] - p["fitted"] for p in fits])
    table[config] = (row, total, own, len(fits))
print(f"load average {os.getloadavg()[0]:.2f} (2 cores shared; the folds of a node run concurrently)")
labels = [l for l, _, _ in PHASES] + ["(start → boot)"]
print(f"{'phase (s per fit)':24}" + "".join(f"{c:>15}" for c in configs))
for l in labels:
    print(f"{l:24}" + "".join(f"{table[c][0][l]:15.4f}" for c in configs))
print(f"{'total per fit':24}" + "".join(f"{table[c][1]:15.4f}" for c in configs))
print(f"{'Loom part (total-own)':24}" + "".join(f"{table[c][1] - table[c][2]:15.4f}" for c in configs))
print(f"{'fits':24}" + "".join(f"{table[c][3]:15d}" for c in configs))
