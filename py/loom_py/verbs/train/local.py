"""The CPU stand-in: a torch-free PPMI + truncated-SVD event-embedding backbone.

  sequences → windowed co-occurrence counts (1/distance weights; directional for next-event, symmetric
  for embedding) → positive PMI with context-distribution smoothing (α = 0.75) → randomized truncated
  SVD (fixed seed, signs normalized) → event embeddings W = U·√S and context embeddings C = V·√S.

Evaluation: the last event of every sequence with >= 3 events is held out before anything is counted;
the backbone ranks all events by Σ_d w_d · W[ctx_-d] · Cᵀ over the same window, the popularity baseline
by training counts. Both are scored on the same split (hit@10, MRR; ties get the average rank).
Deterministic: fixed seed, float64 math, BLAS threads pinned by the caller, float32 little-endian bytes
hashed for ``backbone_sha256``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from loom_py.verbs.train.sequences import MIN_SEQ_FOR_EVAL, Sequences

ALPHA = 0.75
SEED = 0
POWER_ITERS = 4
OVERSAMPLE = 10


@dataclass
class Backbone:
    vocab: list
    counts: "object"          # training count per vocab entry
    embeddings: "object"      # float32 (V, k): event embeddings W
    context: "object"         # float32 (V, k): context embeddings C
    singular_values: "object"
    sha256: str
    config: dict
    stats: dict = field(default_factory=dict)


def split_holdout(seqs: Sequences):
    """(train_mask, heldout_index): the last event of each sequence with >= MIN_SEQ_FOR_EVAL events."""
    import numpy as np

    lens = np.diff(seqs.starts)
    ends = seqs.starts[1:] - 1
    held = ends[lens >= MIN_SEQ_FOR_EVAL]
    mask = np.ones(seqs.n_events, dtype=bool)
    mask[held] = False
    return mask, held


def cooccurrence(ids, sid, V: int, window: int, symmetric: bool):
    """Sparse (V, V) counts: M[a, b] += 1/d when b follows a at distance d <= window in the same sequence."""
    import numpy as np
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        if len(ids) <= d:
            break
        same = sid[d:] == sid[:-d]
        r, c = ids[:-d][same], ids[d:][same]
        rows.append(r)
        cols.append(c)
        vals.append(np.full(len(r), 1.0 / d))
    if not rows:
        return sp.csr_matrix((V, V))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    if symmetric:
        r, c, v = np.concatenate([r, c]), np.concatenate([c, r]), np.concatenate([v, v])
    M = sp.coo_matrix((v, (r, c)), shape=(V, V)).tocsr()
    M.sum_duplicates()
    return M


def ppmi(M, alpha: float = ALPHA):
    """Positive PMI with context-distribution smoothing: log(p(a,b) / (p(a) · p_α(b))), negatives → 0."""
    import numpy as np
    import scipy.sparse as sp

    M = M.tocoo()
    total = M.sum()
    row = np.asarray(M.sum(axis=1)).ravel()
    col = np.asarray(M.sum(axis=0)).ravel() ** alpha
    col_p = col / col.sum()
    with np.errstate(divide="ignore"):
        pmi = np.log(M.data / total) - np.log(row[M.row] / total) - np.log(col_p[M.col])
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (M.row[keep], M.col[keep])), shape=M.shape)


def randomized_svd(A, k: int, seed: int = SEED, n_iter: int = POWER_ITERS):
    """Halko-Martinsson-Tropp randomized SVD with a fixed seed; signs normalized so that the largest-|.|
    entry of every left singular vector is positive."""
    import numpy as np

    m, n = A.shape
    k = max(1, min(k, min(m, n)))
    p = min(min(m, n), k + OVERSAMPLE)
    rng = np.random.default_rng(seed)
    Q = A @ rng.standard_normal((n, p))
    Q, _ = np.linalg.qr(Q)
    for _ in range(n_iter):
        Z, _ = np.linalg.qr(A.T @ Q)
        Q, _ = np.linalg.qr(A @ Z)
    B = (A.T @ Q).T  # = Qᵀ A, computed with the sparse matrix on the left
    Ub, S, Vt = np.linalg.svd(np.asarray(B), full_matrices=False)
    U = Q @ Ub
    U, S, Vt = U[:, :k], S[:k], Vt[:k]
    idx = np.argmax(np.abs(U), axis=0)
    signs = np.sign(U[idx, np.arange(U.shape[1])])
    signs[signs == 0] = 1.0
    return U * signs, S, Vt * signs[:, None]


def backbone_hash(W, C) -> str:
    import numpy as np

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(W, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(C, dtype="<f4").tobytes())
    return "sha256:" + h.hexdigest()


def build(seqs: Sequences, *, objective: str, dim: int, window: int, max_vocab: int) -> Backbone:
    """The build itself (timed by the caller): vocabulary, counts, PPMI, SVD."""
    import numpy as np

    t0 = time.perf_counter()
    train_mask, held = split_holdout(seqs)
    tr_tokens = seqs.tokens[train_mask]
    tr_sid = seqs.seq_id[train_mask]
    uniq, inv, cnt = np.unique(tr_tokens, return_inverse=True, return_counts=True)
    # vocabulary: most frequent first, ties by token (deterministic); capped, rarer tokens dropped
    order = np.lexsort((uniq, -cnt))[:max_vocab]
    vocab = uniq[order]
    remap = np.full(len(uniq), -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    ids = remap[inv]
    keep = ids >= 0
    ids, sid = ids[keep], tr_sid[keep]
    V = len(vocab)
    M = cooccurrence(ids, sid, V, window, symmetric=(objective != "next-event"))
    P = ppmi(M)
    U, S, Vt = randomized_svd(P, min(dim, max(1, V - 1)))
    root = np.sqrt(S)
    W = (U * root).astype(np.float32)
    C = (Vt.T * root).astype(np.float32)
    return Backbone(vocab=[str(v) for v in vocab], counts=cnt[order].astype(np.int64), embeddings=W, context=C,
                    singular_values=S.astype(np.float32), sha256=backbone_hash(W, C),
                    config={"objective": objective, "dim": int(W.shape[1]), "window": window, "alpha": ALPHA,
                            "seed": SEED, "power_iterations": POWER_ITERS, "max_vocab": max_vocab,
                            "weighting": "1/distance", "directional": objective == "next-event"},
                    stats={"vocab_size": V, "train_events": int(len(ids)), "heldout_events": int(len(held)),
                           "nonzero_ppmi": int(P.nnz), "dropped_rare_events": int((~keep).sum()),
                           "build_core_seconds": round(time.perf_counter() - t0, 4)})


def _ranks(scores, truth):
    """Average rank (1 = best) of scores[i, truth[i]] in each row; truth -1 (unknown event) → inf."""
    import numpy as np

    n = len(truth)
    out = np.full(n, np.inf)
    ok = truth >= 0
    if ok.any():
        s = scores[ok]
        t = s[np.arange(len(s)), truth[ok]][:, None]
        greater = (s > t).sum(axis=1)
        ties = (s == t).sum(axis=1) - 1
        out[ok] = 1 + greater + ties / 2.0
    return out


def evaluate(bb: Backbone, seqs: Sequences, *, window: int, k: int = 10, chunk: int = 4096) -> dict:
    """Next-event hit@k and MRR of the backbone vs the popularity baseline on the held-out last events."""
    import numpy as np

    _, held = split_holdout(seqs)
    import pandas as pd

    vidx = pd.Index(bb.vocab)

    def lookup(arr):
        return np.asarray(vidx.get_indexer(arr), dtype=np.int64)

    truth = lookup(seqs.tokens[held]) if len(held) else np.zeros(0, dtype=np.int64)
    W, C = bb.embeddings.astype(np.float64), bb.context.astype(np.float64)
    pop = bb.counts.astype(np.float64)
    ranks, base_ranks = [], []
    for a in range(0, len(held), chunk):
        h = held[a:a + chunk]
        q = np.zeros((len(h), W.shape[1]))
        for d in range(1, window + 1):
            pos = h - d
            valid = (pos >= 0)
            valid[valid] &= seqs.seq_id[pos[valid]] == seqs.seq_id[h[valid]]
            ids = np.full(len(h), -1, dtype=np.int64)
            ids[valid] = lookup(seqs.tokens[pos[valid]]) if valid.any() else ids[valid]
            m = ids >= 0
            q[m] += W[ids[m]] / d
        scores = q @ C.T
        t = truth[a:a + chunk]
        ranks.append(_ranks(scores, t))
        base_ranks.append(_ranks(np.broadcast_to(pop, (len(h), len(pop))), t))
    r = np.concatenate(ranks) if ranks else np.zeros(0)
    b = np.concatenate(base_ranks) if base_ranks else np.zeros(0)
    n = len(r)

    def hit(x):
        return float((x <= k).mean()) if n else 0.0

    def mrr(x):
        return float((1.0 / x).mean()) if n else 0.0

    return {"hit_at_10": round(hit(r), 6), "baseline_hit_at_10": round(hit(b), 6), "mrr": round(mrr(r), 6),
            "baseline_mrr": round(mrr(b), 6), "heldout": n, "unseen_heldout": int((truth < 0).sum()),
            "lift_hit_at_10": round(hit(r) - hit(b), 6), "k": k}


def nearest_neighbours(bb: Backbone, top: int = 10, k: int = 5) -> list[dict]:
    """Cosine neighbours (event embeddings) of the most frequent events."""
    import numpy as np

    W = bb.embeddings.astype(np.float64)
    norm = np.linalg.norm(W, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    E = W / norm
    out = []
    for i in range(min(top, len(bb.vocab))):
        sims = E @ E[i]
        sims[i] = -np.inf
        nn = np.argsort(-sims, kind="stable")[:k]
        out.append({"event": bb.vocab[i], "count": int(bb.counts[i]),
                    "neighbours": ", ".join(f"{bb.vocab[j]} ({sims[j]:.2f})" for j in nn if np.isfinite(sims[j]))})
    return out
