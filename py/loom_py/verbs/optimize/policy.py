"""Which operator to apply next, and to which node.

``aide`` is AIDE's policy as published (aideml ``agent.search_policy``): draft until ``num_drafts``
drafts exist; then with probability ``debug_prob`` debug a failed leaf whose debug chain is shorter than
``max_debug_depth``; otherwise improve the single best node. It is the default. ``topk`` differs in one
place: it improves among the top ``k`` nodes of distinct families — rank 1 half of the time, the others
round-robin. Measured in bench/optimize_policy.py it was not better (test-split ratio 0.98 on average,
equal on four data sets), so it stays an option, not the default (docs/decisions/0400).
"""

from __future__ import annotations

import random


def debug_depth(node: dict, by_id: dict) -> int:
    d = 0
    while node is not None and node["operator"] == "debug":
        d += 1
        node = by_id.get(node.get("parent"))
    return d


def choose(journal: list[dict], spec_key, rng: random.Random, *, policy: str = "aide", num_drafts: int = 5,
           debug_prob: float = 0.5, max_debug_depth: int = 3, k: int = 3, pending: list[dict] | None = None):
    """Return (operator, parent_node_or_None)."""
    pending = pending or []
    nodes = journal + pending
    by_id = {n["id"]: n for n in nodes}
    drafts = [n for n in nodes if n["operator"] == "draft"]
    if len(drafts) < num_drafts:
        return "draft", None
    if rng.random() < debug_prob:
        children = {n.get("parent") for n in nodes}
        buggy = [n for n in journal if n["status"] != "ok" and n["id"] not in children and n["operator"] != "ensemble"
                 and debug_depth(n, by_id) < max_debug_depth]
        if buggy:
            return "debug", buggy[rng.randrange(len(buggy))]
    # an ensemble (a resumed search's) is improved through its members, never as a node of its own
    good = sorted([n for n in journal if n["status"] == "ok" and n["operator"] != "ensemble"], key=lambda n: (spec_key(n["score"]), n["id"]))
    if not good:
        return "draft", None
    if policy == "aide" or len(good) == 1:
        return "improve", good[0]
    # topk: distinct families first so the top few are not one model's near-duplicates
    top, fams = [], set()
    for n in good:
        if n.get("family") not in fams or n.get("family") is None:
            top.append(n)
            fams.add(n.get("family"))
        if len(top) >= k:
            break
    improves = sum(1 for n in nodes if n["operator"] == "improve")
    if improves % 2 == 0 or len(top) == 1:
        return "improve", top[0]
    return "improve", top[1 + (improves // 2) % (len(top) - 1)]
