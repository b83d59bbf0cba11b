"""report: walk an experiment's lineage and assemble a model card (Mitchell et al. 2019).

Lineage is read through the Metaflow Client API only: every Loom run records the pathspecs it read in
``loom_result["inputs"]`` and data objects record ``lineage["inputs"]``; the walk follows both from the
given run (or from every run of an experiment) back to the ingest boundary.

``--experiment NAME`` means: the runs tagged ``experiment:NAME``. Any verb's run gets that tag when it is
started with ``LOOM_EXPERIMENT=NAME`` in the environment (the bridge passes ``--tag experiment:NAME`` to
Metaflow); an existing run can be tagged with plain Metaflow (``Run(p).add_tag("experiment:NAME")``).

The card covers the sections of the model-card paper that runs can fill and names the ones they cannot.
"""

from __future__ import annotations

import html
import json
import re

from loom_py.runtime.data import client
from loom_py.runtime.errors import UsageError

LOOM_FLOWS = ("IngestDataset", "EdaFlow", "FeaturesFlow", "OptimizeFlow", "ValidateFlow", "VizFlow", "TrainFlow",
              "PipelineFlow", "DeployFlow", "OpsFlow", "ReportFlow", "CollabFlow")
PARAM_NAMES = ("goal", "target", "metric", "recipe", "steps", "seed", "objective", "budget")
SECTIONS = ("Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
            "Quantitative analyses", "Ethical considerations", "Caveats and recommendations")


# ---- reading runs ---------------------------------------------------------------------------------

def experiment_runs(name: str) -> list[str]:
    """Pathspecs of successful runs tagged experiment:NAME, oldest first."""
    mf = client()
    tag = f"experiment:{name}"
    out = []
    try:
        flows = list(mf.Metaflow())
    except Exception:
        return out
    for fl in flows:
        try:
            for r in fl.runs(tag):
                if r.successful:
                    out.append((r.created_at, r.pathspec))
        except Exception:
            continue
    return [p for _, p in sorted(out)]


def read_node(pathspec: str) -> dict | None:
    mf = client()
    try:
        run = mf.Run(pathspec)
    except Exception:
        return None
    node = {"pathspec": pathspec, "flow": pathspec.split("/")[0], "successful": bool(run.successful),
            "created": run.created_at.isoformat() if run.created_at else None,
            "tags": sorted(run.user_tags) if hasattr(run, "user_tags") else [],
            "status": None, "verdict": None, "summary": {}, "messages": [], "inputs": [], "params": {}}
    try:
        d = run.data
    except Exception:
        d = None
    if d is None:
        node["status"] = "FAILED"
        return node
    res = getattr(d, "loom_result", None) if "loom_result" in d else None
    if res:
        node.update(status=res.get("status"), verdict=res.get("verdict"), summary=res.get("summary") or {},
                    messages=list(res.get("messages") or []), inputs=list(res.get("inputs") or []))
    if "lineage" in d:
        lin = d.lineage or {}
        node["lineage"] = lin
        node["inputs"] += [p for p in lin.get("inputs", []) if p not in node["inputs"]]
    node["params"] = run_parameters(pathspec)
    for k in PARAM_NAMES:
        if k in d and k not in node["params"]:
            try:
                v = getattr(d, k)
            except Exception:
                continue
            if isinstance(v, (str, int, float, bool)) and v != "":
                node["params"][k] = v
    if "data_parquet" in d:
        node["dataset"] = {k: (getattr(d, k) if k in d else None)
                           for k in ("label", "rows", "n_columns", "content_hash", "source")}
    return node


SKIP_PARAMS = {"data_parquet", "name"}  # IncludeFile payloads are data, not settings


def run_parameters(pathspec: str) -> dict:
    """The run's Metaflow parameters (the ``_parameters`` task's artifacts), non-empty scalars only."""
    mf = client()
    out = {}
    try:
        task = mf.Task(f"{pathspec}/_parameters/0")
        for a in task.artifacts:
            if a.id.startswith("_") or a.id in SKIP_PARAMS:
                continue
            v = a.data
            if isinstance(v, (str, int, float, bool)) and v not in ("", "[]", "{}"):
                out[a.id] = v
    except Exception:
        pass
    return out


def walk(roots: list[str], read=read_node, limit: int = 200) -> dict[str, dict]:
    """Every run reachable from ``roots`` through inputs / lineage, keyed by pathspec."""
    seen: dict[str, dict] = {}
    todo = list(roots)
    while todo and len(seen) < limit:
        p = todo.pop(0)
        if p in seen or not isinstance(p, str) or "/" not in p:
            continue
        n = read(p)
        if n is None:
            seen[p] = {"pathspec": p, "flow": p.split("/")[0], "missing": True, "inputs": [], "summary": {},
                       "messages": [], "params": {}, "status": "MISSING", "verdict": None}
            continue
        seen[p] = n
        todo += [q for q in n.get("inputs", []) if q not in seen]
    return seen


def order(nodes: dict[str, dict]) -> list[dict]:
    """Upstream first (inputs before the runs that read them), ties by creation time."""
    out, done = [], set()

    def visit(p, stack=()):
        if p in done or p in stack or p not in nodes:
            return
        for q in nodes[p].get("inputs", []):
            visit(q, stack + (p,))
        done.add(p)
        out.append(nodes[p])

    for p in sorted(nodes, key=lambda p: (nodes[p].get("created") or "", p)):
        visit(p)
    return out


# ---- the card -------------------------------------------------------------------------------------

def _f(v, nd=4):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}g}"
    return str(v)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_MD_ALWAYS = re.compile(r"([\\`*\[\]<|~])")


def md_text(v) -> str:
    """A data- or model-derived string as Markdown text that renders as itself and nothing else: no image, link,
    autolink or HTML can come out of it, and it cannot end a table cell or a line. Backslash escapes (CommonMark):
    ``\\ ` * [ ] < | ~`` always, ``_`` where it could open emphasis, ``:`` before ``//``, ``.`` after ``www``
    and ``&`` before an entity; an e-mail address becomes a code span (GitHub links it whatever its escapes); line breaks and control characters become spaces."""
    s = _CONTROL.sub(" ", v if isinstance(v, str) else _f(v))
    # cmark-gfm links an e-mail address after escapes are read: as a code span it stays text
    parts = re.split(r"([A-Za-z0-9._+-]+@[A-Za-z0-9._-]+)", s)
    return "".join(md_code(x) if i % 2 else _md_escape(x) for i, x in enumerate(parts) if x)


def _md_escape(s: str) -> str:
    s = _MD_ALWAYS.sub(r"\\\1", s)
    s = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", s)
    s = re.sub(r":(?=//)", r"\\:", s)
    s = re.sub(r"(?i)\b(www)\.", r"\1\\.", s)
    return re.sub(r"&(?=#?\w+;)", r"\\&", s)


def md_code(v) -> str:
    """A data-derived string as an inline code span (nothing inside a code span is Markdown or HTML): fenced by more
    backticks than its longest backtick run, padded where it starts or ends with a backtick or a space."""
    s = _CONTROL.sub(" ", v if isinstance(v, str) else _f(v))
    if not s:
        return "` `"
    fence = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s[0] in "` " or s[-1] in "` " else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _short(v, n: int = 80) -> str:
    s = v if isinstance(v, str) else json.dumps(v)
    s = s.replace("\n", " ")
    return s if len(s) <= n else s[: n - 1] + "…"


def _table(rows: list[dict], cols: list[str]) -> list[str]:
    if not rows:
        return ["(none)"]
    out = ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:  # every cell is data: escaped (a pipe cannot end it, a newline cannot end the row)
        out.append("| " + " | ".join(md_text(_f(r.get(c))) for c in cols) + " |")
    return out


def build_card(nodes: dict[str, dict], root: str | None, *, experiment: str | None = None) -> dict:
    """The model card as Markdown plus the structured facts behind it."""
    chain = order(nodes)
    by_flow: dict[str, list[dict]] = {}
    for n in chain:
        by_flow.setdefault(n["flow"], []).append(n)
    latest = lambda flow: (by_flow.get(flow) or [None])[-1]  # noqa: E731
    val = nodes.get(root) if root and root.startswith("ValidateFlow/") else latest("ValidateFlow")
    opt = latest("OptimizeFlow")
    vs = (val or {}).get("summary") or {}
    filled, unfilled = [], []
    md: list[str] = []
    title = f"Model card: {experiment or root}"
    md += [f"# {md_text(title)}", ""]
    val_caveats = list((val or {}).get("messages") or [])
    if val:
        verdict = val.get("verdict") or vs.get("verdict")
        with_c = f", with {len(val_caveats)} caveat{'s' if len(val_caveats) != 1 else ''}" if val_caveats else ""
        md += [f"**VERDICT: {md_text(verdict)}{with_c}** from {md_code(val['pathspec'])}", ""]
        md += [f"- caveat: {md_text(c)}" for c in val_caveats] + ([""] if val_caveats else [])

    # Model details
    md += ["## Model details", ""]
    if vs.get("model") or opt:
        m = vs.get("model") or {}
        md += [f"- model: {md_text(m.get('name') or 'the best solution of ' + opt['pathspec'])}"]
        if m.get("source") and m.get("source") != "default":
            md += [f"- solution run: {md_code(m['source'])}"]
        if opt:
            md += [f"- searched by {md_code(opt['pathspec'])} ({md_text(_f(opt['params'].get('steps')))} steps, metric "
                   f"{md_text(_f(opt['params'].get('metric')))})"]
        md += [f"- target: {md_code(vs.get('target') or (opt or {}).get('params', {}).get('target'))} "
               f"({md_text(vs.get('task', 'n/a'))})",
               f"- evaluated by: {md_code(val['pathspec'])} on {md_text(val.get('created') or 'n/a')}" if val else "- not validated yet",
               f"- seed: {md_text(_f(vs.get('seed')))}", ""]
        filled.append("Model details")
    else:
        md += ["Not available: no validate or optimize run on this path names a model.", ""]
        unfilled.append("Model details")

    # Intended use
    md += ["## Intended use", ""]
    goals = [n["params"]["goal"] for n in chain if n.get("params", {}).get("goal")]
    if goals:
        md += [f"- goal (from `--goal`): {md_text(goals[-1])}", "- out of scope: anything the goal does not state; "
               "the evaluation below covers only the data this card names.", ""]
        filled.append("Intended use")
    else:
        md += ["Not stated: no run on this path was given a `--goal` (pass one to `loom run`).", ""]
        unfilled.append("Intended use")

    # Factors
    md += ["## Factors", ""]
    fair = vs.get("fairness") or {}
    if fair:
        md += [f"- evaluated per group of: {', '.join(md_code(c) for c in fair)} (from `--sensitive`)", ""]
        filled.append("Factors")
    else:
        md += ["Not evaluated: validate ran without `--sensitive`, so no groups were compared.", ""]
        unfilled.append("Factors")

    # Metrics
    md += ["## Metrics", ""]
    cv, ho = vs.get("cv") or {}, vs.get("holdout") or {}
    if val:
        T = md_text
        md += [f"- metric: {T(vs.get('metric'))} ({T((vs.get('thresholds') or {}).get('metric_direction', ''))} is better)",
               f"- cross-validation: {T(cv.get('scheme'))}, {T(cv.get('folds'))} folds: mean {T(_f(cv.get('mean')))} "
               f"± {T(_f(cv.get('std')))} (std)"
               + (f"; {T(cv.get('purged'))} rows purged, {T(cv.get('embargoed'))} embargoed" if cv.get("scheme") == "purged_kfold" else ""),
               f"- sealed holdout: {T(_f(ho.get('value')))} on {T(ho.get('rows'))} rows",
               f"- bar: {T(_f((vs.get('thresholds') or {}).get('threshold')))}", ""]
        md += _table(cv.get("per_fold") or [], ["fold", "train_rows", "test_rows", "value", "purged", "embargoed"]) + [""]
        md += ["Thresholds the verdict used:", ""]
        md += _table([{"bound": k, "value": v} for k, v in (vs.get("thresholds") or {}).items()], ["bound", "value"]) + [""]
        filled.append("Metrics")
    else:
        md += ["Not available: no validate run on this path (run `loom validate`).", ""]
        unfilled.append("Metrics")

    # Evaluation data
    md += ["## Evaluation data", ""]
    seal = vs.get("seal") or {}
    if seal:
        md += [f"- sealed holdout {md_code(seal.get('id'))}: {md_text(seal.get('rows'))} rows ({md_text(seal.get('how'))}), row hash "
               f"{md_code(seal.get('rows_hash'))}; evaluated {md_text(seal.get('evaluations'))} time(s)",
               f"- drawn from {md_code((vs.get('dataset') or {}).get('pathspec'))} (content hash "
               f"{md_code((vs.get('dataset') or {}).get('content_hash'))})", ""]
        filled.append("Evaluation data")
    else:
        md += ["Not available: no sealed holdout on this path.", ""]
        unfilled.append("Evaluation data")

    # Training data
    md += ["## Training data", ""]
    datasets = [n for n in chain if n.get("dataset")]
    if datasets:
        for n in datasets:
            d = n["dataset"]
            src = d.get("source") or {}
            src_s = src.get("path") or src.get("uri") or src.get("kind") or json.dumps(src)[:120]
            md += [f"- {md_code(n['pathspec'])} ({md_text(d.get('label'))}): {md_text(_f(d.get('rows')))} rows × "
                   f"{md_text(_f(d.get('n_columns')))} columns, hash {md_code(d.get('content_hash'))}, source: {md_text(src_s)}"]
        for n in by_flow.get("FeaturesFlow", []):
            s = n.get("summary") or {}
            drops = s.get("dropped_for_leakage") or []
            md += [f"- features {md_code(n['pathspec'])} (recipe {md_text(n['params'].get('recipe', s.get('recipe', 'n/a')))}): "
                   f"dropped for leakage: {', '.join(md_text(d.get('column', '?')) + ' (' + md_text(d.get('reason', '')) + ')' for d in drops) or 'none'}"]
            man = s.get("manifest")
            if isinstance(man, list) and man:
                cols = [m.get("name") or m.get("column") for m in man if isinstance(m, dict)]
                cols = [c for c in cols if c != vs.get("target")]
                md += [f"  - {len(cols)} features: {', '.join(md_text(str(c)) for c in cols[:40])}{' …' if len(cols) > 40 else ''}"]
        for n in by_flow.get("EdaFlow", []):
            flags = (n.get("summary") or {}).get("leakage_flags") or []
            md += [f"- profiled by {md_code(n['pathspec'])}: leakage flags: "
                   f"{', '.join(md_text(f['column']) + ' (' + md_text(f['reason']) + ')' for f in flags) or 'none'}"]
        md += [""]
        filled.append("Training data")
    else:
        md += ["Not available: the lineage reaches no data object.", ""]
        unfilled.append("Training data")

    # Quantitative analyses
    md += ["## Quantitative analyses", ""]
    cal = vs.get("calibration")
    qa = False
    if cal:
        failed = (cal.get("judged") or {}).get("failed") or []
        T = md_text
        md += [f"- calibration on the holdout: ECE {T(_f(cal.get('ece')))} ({T(cal.get('bins'))} bins, {T(cal.get('ece_of'))}), "
               f"Brier {T(_f(cal.get('brier')))}, slope {T(_f(cal.get('slope')))}, intercept {T(_f(cal.get('intercept')))}"
               + (f"; failed: {'; '.join(T(x) for x in failed)}" if failed else ""), ""]
    base = (ho or {}).get("baseline")
    if base:
        md += [f"- trivial baseline ({md_text(base.get('what'))}): {md_text(_f(base.get('baseline')))}; improvement "
               f"{md_text(_f(base.get('improvement')))} (needed > {md_text(_f(base.get('required')))}): "
               f"{'beaten' if base.get('beats') else 'NOT beaten'}", ""]
        qa = True
    for col, fr in fair.items():
        metric = vs.get("metric")
        T = md_text
        md += [f"Per-slice results for {md_code(col)}: demographic-parity difference {T(_f(fr.get('demographic_parity_difference')))} "
               f"(ratio {T(_f(fr.get('demographic_parity_ratio')))}), equalized-odds difference "
               f"{T(_f(fr.get('equalized_odds_difference')))}", ""]
        dec = fr.get("decision") or {}
        if dec:
            md += [f"Decisions at threshold {T(_f(dec.get('threshold')))} ({T(dec.get('how'))}); per-group ROC-AUC gap "
                   f"{T(_f(fr.get('auc_gap')))}", ""]
        if fr.get("assessable") is False:
            md += ["**Not assessable**: " + "; ".join(T(x) for x in fr.get("not_assessable_because") or []), ""]
        md += _table(fr.get("groups") or [], ["group", "rows", metric, "auc", "selection_rate", "tpr", "fpr", "judged"]) + [""]
        if fr.get("too_small"):
            md += ["Too small to judge: " + ", ".join(f"{T(g['group'])} ({T(g['reason'])})" for g in fr["too_small"]), ""]
        qa = True
    lk = vs.get("leakage")
    if lk:
        md += [f"- leakage: {'FOUND' if lk.get('found') else 'none found'}; holdout rows duplicated in CV data: "
               f"{md_text((lk.get('duplicates') or {}).get('holdout_rows_in_cv'))}; holdout implausibly above CV: "
               f"{md_text(lk.get('holdout_above_cv'))}", ""]
        qa = True
    (filled if qa else unfilled).append("Quantitative analyses")
    if not qa:
        md += ["Not available: no validate run on this path.", ""]

    # Ethical considerations: never derivable from runs
    md += ["## Ethical considerations", "",
           "Not filled: runs record data, metrics and lineage, not the context of use, the people affected or the "
           "risks of misuse. The owner of this model must write this section.", ""]
    unfilled.append("Ethical considerations")

    # Caveats
    md += ["## Caveats and recommendations", ""]
    caveats = []
    for n in chain:  # every run's messages are caveats, whatever its status (a PASS can carry one)
        st, vd = n.get("status"), n.get("verdict")
        bad = st in ("WARN", "FAIL", "FAILED", "MISSING") or vd == "FAIL"
        items = (list((n.get("summary") or {}).get("reasons") or []) if bad else []) + list(n.get("messages") or [])
        if bad or items:
            caveats.append({"pathspec": n["pathspec"], "status": vd or st, "items": items[:20]})
    for c in caveats:
        md += [f"- {md_code(c['pathspec'])}: **{md_text(c['status'])}**"] + [f"  - {md_text(i)}" for i in c["items"]]
    if not caveats:
        md += ["- no WARN, FAIL or caveat on the path."]
    if seal.get("evaluations", 0) > 1:
        md += [f"- the sealed holdout has been evaluated {md_text(seal['evaluations'])} times: repeated looks make it optimistic."]
    md += [""]
    filled.append("Caveats and recommendations")

    # Reproduce
    md += ["## Reproduce", "", "Runs on the path, upstream first (read any of them with the Metaflow Client API):", ""]
    md += _table([{"pathspec": n["pathspec"], "status": n.get("verdict") or n.get("status"), "created": n.get("created"),
                   "inputs": ", ".join(n.get("inputs") or []),
                   "parameters": " ".join(f"{k}={_short(v)}" for k, v in sorted((n.get("params") or {}).items()))}
                  for n in chain], ["pathspec", "status", "created", "inputs", "parameters"])
    md += ["", "Sections this card could not fill from the runs: " + (", ".join(unfilled) or "none"), ""]
    return {"markdown": "\n".join(md), "filled": filled, "unfilled": unfilled, "caveats": caveats,
            "runs": [{"pathspec": n["pathspec"], "flow": n["flow"], "status": n.get("status"), "verdict": n.get("verdict"),
                      "created": n.get("created"), "inputs": n.get("inputs") or []} for n in chain],
            "validate": val["pathspec"] if val else None,
            "metrics": {"metric": vs.get("metric"), "cv_mean": cv.get("mean"), "cv_std": cv.get("std"),
                        "holdout": ho.get("value"), "verdict": vs.get("verdict"), "caveats": val_caveats} if val else None}


# ---- Markdown → HTML (the subset build_card writes) ---------------------------------------------------

_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation (CommonMark's escapes)


def _inline(s: str) -> str:
    """Code spans (any fence length), **bold** and backslash escapes: what build_card writes; everything else is
    text, HTML-escaped."""
    out, pos = [], 0
    for m in re.finditer(r"(?<![`\\])(`+)(?!`)(.+?)(?<!`)\1(?!`)", s):
        out.append(_inline_text(s[pos:m.start()]))
        code = m.group(2)
        if len(code) > 1 and code[0] == " " and code[-1] == " " and code.strip():
            code = code[1:-1]
        out.append(f"<code>{html.escape(code, quote=False)}</code>")
        pos = m.end()
    out.append(_inline_text(s[pos:]))
    return "".join(out)


def _inline_text(s: str) -> str:
    s = _ESCAPED.sub(lambda m: f"\x00{ord(m.group(1))}\x00", s)  # escaped characters stay literal
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html.escape(s, quote=False))
    return re.sub("\x00(\\d+)\x00", lambda m: html.escape(chr(int(m.group(1))), quote=False), s)


def to_html(md: str, title: str = "Model card") -> str:
    out, i, lines = [], 0, md.split("\n")
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("| "):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            cells = lambda r: [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", r.strip())[1:-1]]  # noqa: E731
            head = cells(rows[0])
            body = [cells(r) for r in rows[2:]]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</tbody></table>")
            continue
        elif line.lstrip().startswith("- "):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                nested = lines[i].startswith("  ")
                items.append(("<li class='sub'>" if nested else "<li>") + _inline(lines[i].lstrip()[2:]) + "</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
             "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;font-size:.9rem}"
             "code{background:#f3f3f3;padding:0 .2rem}li.sub{margin-left:1.5rem;list-style:circle}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


# ---- bridge hook -------------------------------------------------------------------------------------

def prepare(params: dict) -> dict:
    from loom_py.runtime.data import require_datastore, resolve_run

    run, exp = params.get("run") or "", params.get("experiment") or ""
    if bool(run) == bool(exp):
        raise UsageError("report needs exactly one of --run PATHSPEC (e.g. ValidateFlow/12) or --experiment NAME")
    require_datastore()
    if run:
        resolve_run(run, None, what="run")
        inputs = [run]
    else:
        inputs = experiment_runs(exp)
        if not inputs:
            raise UsageError(f"no runs tagged experiment:{exp}: run verbs with LOOM_EXPERIMENT={exp} set "
                             "(or tag runs with Metaflow), or pass --run PATHSPEC")
    return {"params": {"run": run, "experiment": exp}, "inputs": inputs}
