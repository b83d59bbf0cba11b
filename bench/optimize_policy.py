"""AIDE's published policy (improve the single best node) vs Loom's default top-k policy (improve among
the best nodes of distinct families), same offline proposer, same steps, three seeds, five data sets;
scored on test rows no search saw. Ratio > 1: top-k better.

Usage: .venv/bin/python bench/optimize_policy.py [STEPS=20] [SEEDS=3]
"""

import statistics
import sys
import warnings

from optimize_common import DATASETS, dev_test, load, loom_search, ratio, refit_best, spec_for, test_score

warnings.filterwarnings("ignore")
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
print(f"{steps} steps, seeds 0..{seeds - 1}; test-split score (mean over seeds)")
print(f"{'dataset':14} {'metric':10} {'aide':>9} {'topk':>9} {'ratio':>6}  {'val aide':>9} {'val topk':>9}")
ratios = []
for name in DATASETS:
    df = load(name)
    spec = spec_for(name)
    out = {}
    for pol in ("aide", "topk"):
        tests, vals = [], []
        for seed in range(seeds):
            dev, test = dev_test(df, spec["task"], seed)
            rec = loom_search(dev, spec, steps=steps, policy=pol, seed=seed)
            model, best = refit_best(rec, dev)
            tests.append(test_score(spec, model, test))
            vals.append(best["score"])
        out[pol] = (statistics.mean(tests), statistics.mean(vals))
    r = ratio(spec, out["topk"][0], out["aide"][0])
    ratios.append(r)
    print(f"{name:14} {spec['metric']:10} {out['aide'][0]:9.4f} {out['topk'][0]:9.4f} {r:6.3f}  {out['aide'][1]:9.4f} {out['topk'][1]:9.4f}")
print(f"mean ratio topk/aide {statistics.mean(ratios):.4f} (min {min(ratios):.4f}, max {max(ratios):.4f})")
