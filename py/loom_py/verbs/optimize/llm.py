"""LLM proposers seen from the search loop: prompts, the bounded memory, code extraction, and the client
for the proposer server the TypeScript process hosts (it holds the SDKs and the key; we POST to it).

Malformed model output — no code block, code that does not compile, no ``make_model`` — becomes a failed
node with a reason, never a crash.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

CONTRACT = """Write ONE self-contained Python file. It must define `make_model()` returning an UNFITTED
scikit-learn-compatible estimator (a Pipeline is ideal). Loom calls `make_model().fit(X, y)` on the training rows
(X: a pandas DataFrame of the raw feature columns, y: the target Series), then `predict` (and `predict_proba`
for classification) on held-out rows whose labels you never see, and computes the metric itself: do not
compute or print scores, do not read or write files, do not use the network or subprocesses.
Handle missing values and categorical (string) columns inside the pipeline. Available: numpy, pandas,
scikit-learn, lightgbm, scipy. Use n_jobs=1 and keep training under {timeout:g} seconds.
Reply with a short plan (3-5 sentences) and then exactly one ```python code block."""

SYSTEM = ("You are an expert machine-learning engineer iterating on a tabular prediction task. Each reply is one "
          "candidate solution that a harness trains and scores on a held-out split.")


def data_preview(train, target: str, task: str, max_cols: int = 40) -> str:
    """A compact, bounded description of the training data (statistics, not rows)."""
    import pandas as pd

    from loom_py.stats.tabular import semantic_type

    lines = [f"{len(train)} training rows, {train.shape[1] - 1} feature columns; target `{target}` ({task})."]
    y = train[target]
    if task == "classification":
        vc = y.value_counts(normalize=True).head(10)
        lines.append("target classes: " + ", ".join(f"{k!s}: {v:.1%}" for k, v in vc.items()))
    else:
        lines.append(f"target: mean {y.mean():.4g}, std {y.std():.4g}, min {y.min():.4g}, max {y.max():.4g}")
    cols = [c for c in train.columns if c != target]
    for c in cols[:max_cols]:
        s = train[c]
        t = semantic_type(s, c)
        miss = f", {s.isna().mean():.0%} missing" if s.isna().any() else ""
        if t == "numeric" and pd.api.types.is_numeric_dtype(s):
            desc = f"mean {s.mean():.4g}, std {s.std():.4g}, range [{s.min():.4g}, {s.max():.4g}]"
        else:
            top = s.astype(str).value_counts().head(4)
            desc = f"{s.nunique()} distinct; top: " + ", ".join(f"{str(k)[:20]}" for k in top.index)
        lines.append(f"- {c} ({s.dtype}, {t}{miss}): {desc}")
    if len(cols) > max_cols:
        lines.append(f"- … and {len(cols) - max_cols} more columns")
    return "\n".join(lines)


def memory(journal: list[dict], spec: dict, spec_key, limit_good: int = 8, limit_bad: int = 4, plan_chars: int = 240) -> str:
    """Every scored node's plan, score and outcome, summarized so the prompt stays bounded."""
    good = sorted([n for n in journal if n["status"] == "ok"], key=lambda n: spec_key(n["score"]))
    bad = [n for n in journal if n["status"] != "ok"]
    if not journal:
        return "No solutions have been tried yet."
    out = [f"{len(journal)} solutions tried so far ({len(good)} scored, {len(bad)} failed). {spec['label']} is "
           f"{'higher' if spec['direction'] == 'maximize' else 'lower'}-is-better."]
    for n in good[:limit_good]:
        out.append(f"- node {n['id']} ({n['operator']}, {n.get('model') or '?'}): {spec['label']} {n['score']:.5g}. "
                   f"Plan: {_clip(n['plan'], plan_chars)}")
    if len(good) > limit_good:
        out.append(f"- … {len(good) - limit_good} lower-scoring solutions omitted")
    for n in bad[-limit_bad:]:
        out.append(f"- node {n['id']} FAILED ({_clip(n.get('error') or '', 120)}). Plan: {_clip(n['plan'], 120)}")
    return "\n".join(out)


def _clip(s: str, n: int) -> str:
    s = " ".join((s or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def build_prompt(op: str, *, goal: str, spec: dict, preview: str, mem: str, parent: dict | None, timeout: float) -> dict:
    parts = [f"# Goal\n{goal}", f"# Metric (Loom computes it on a held-out split)\n{spec['label']}, {spec['direction']}.",
             f"# Data\n{preview}", f"# What has been tried\n{mem}", "# Contract\n" + CONTRACT.format(timeout=timeout)]
    if op == "draft":
        parts.append("# Task\nPropose a NEW solution, different in approach from the ones above. Start simple and sound.")
    elif op == "improve":
        parts.append(f"# Task\nImprove this solution (node {parent['id']}, {spec['label']} {parent['score']:.5g}) with ONE "
                     f"atomic change (one idea: a feature, a model, or a hyperparameter change), and say which.\n"
                     f"```python\n{parent['code']}\n```")
    else:
        parts.append(f"# Task\nThis solution (node {parent['id']}) failed. Fix the bug; change nothing else.\n"
                     f"```python\n{parent['code']}\n```\nError: {parent.get('error')}\nOutput tail:\n```\n"
                     f"{(parent.get('output') or '')[-2500:]}\n```")
    return {"system": SYSTEM, "user": "\n\n".join(parts)}


CODE_RE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.S)


def extract(text: str) -> tuple[str | None, str, str | None]:
    """(code, plan, error): the first fenced code block, the prose before it, or the reason it is unusable."""
    if not text or not text.strip():
        return None, "", "the model returned no text"
    m = CODE_RE.search(text)
    if not m:
        return None, _clip(text, 400), "no code block in the model's reply"
    code = m.group(1).strip() + "\n"
    plan = _clip(text[: m.start()], 600) or "(no plan given)"
    try:
        compile(code, "solution.py", "exec")
    except SyntaxError as e:
        return None, plan, f"invalid code: SyntaxError: {e.msg} (line {e.lineno})"
    if not re.search(r"^def make_model\s*\(", code, re.M):
        return None, plan, "invalid code: no top-level make_model() function"
    return code, plan, None


class ProposerError(Exception):
    """The proposer server could not produce a reply (network, auth, rate limit after retries)."""

    def __init__(self, message: str, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


def remote_complete(url: str, prompt: dict, *, max_tokens: int = 4000, timeout: float = 300) -> dict:
    """POST the prompt to the TS-hosted proposer server → {text, input_tokens, output_tokens, usd, model}."""
    body = json.dumps({"system": prompt["system"], "user": prompt["user"], "max_tokens": max_tokens}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/propose", data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            res = json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        try:
            res = json.loads(e.read().decode())
        except Exception:  # noqa: BLE001
            raise ProposerError(f"proposer server answered HTTP {e.code}", fatal=True)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ProposerError(f"proposer server unreachable: {e}", fatal=True)
    if res.get("error"):
        raise ProposerError(str(res["error"])[:400], fatal=bool(res.get("fatal")))
    return res


class LLMProposer:
    kind = "llm"

    def __init__(self, url: str, *, goal: str, spec: dict, spec_key, preview: str, timeout: float):
        self.url, self.goal, self.spec, self.spec_key, self.preview, self.timeout = url, goal, spec, spec_key, preview, timeout

    def _ask(self, op: str, journal: list[dict], parent: dict | None) -> dict:
        prompt = build_prompt(op, goal=self.goal, spec=self.spec, preview=self.preview,
                              mem=memory(journal, self.spec, self.spec_key), parent=parent, timeout=self.timeout)
        res = remote_complete(self.url, prompt)
        code, plan, err = extract(res.get("text") or "")
        return {"plan": plan, "code": code, "error": err, "family": None, "params": {},
                "model": None, "llm_model": res.get("model"),
                "tokens": {"input": int(res.get("input_tokens") or 0), "output": int(res.get("output_tokens") or 0)},
                "usd": float(res.get("usd") or 0.0), "raw_reply": (res.get("text") or "")[:4000]}

    def draft(self, journal, index):
        return self._ask("draft", journal, None)

    def improve(self, journal, parent, index):
        return self._ask("improve", journal, parent)

    def debug(self, journal, parent, index):
        return self._ask("debug", journal, parent)
