"""Small helpers every flow uses: the result artifact, error relay, and card building blocks."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re

from loom_py.runtime import events
from loom_py.runtime.errors import LoomError
from loom_py.stats.tabular import json_safe  # noqa: F401  (flowkit.json_safe for flows)

RESULT_ARTIFACT = "loom_result"


def result(status: str, summary: dict, *, verdict: str | None = None, exit_code: int = 0,
           inputs: list[str] | None = None, messages: list[str] | None = None,
           next: list[str] | None = None) -> dict:
    """The dict a flow stores as ``self.loom_result``; the bridge hands it to the CLI as-is."""
    res = {
        "status": status,
        "verdict": verdict,
        "exit_code": exit_code,
        "summary": json_safe(summary),
        "inputs": inputs or [],
        "messages": messages or [],
        "next": next or [],
    }
    json.dumps(res)  # fail loudly inside the step if something is not JSON-able
    return res


def param_list(v) -> list[str]:
    """A repeatable flag's value as a list of names: citty gives a string or a list, the bridge may pass JSON
    text; commas separate names too (``--sensitive region,plan``)."""
    if v in (None, "", []):
        return []
    if isinstance(v, str):
        try:
            v = json.loads(v) if v.startswith("[") else [v]
        except ValueError:
            v = [v]
    out = []
    for x in v:
        out += [s.strip() for s in str(x).split(",") if s.strip()]
    return out


@contextlib.contextmanager
def relay_errors():
    """Inside a step: a LoomError becomes an ``error`` event (exit code + one line) before the step fails."""
    try:
        yield
    except LoomError as e:
        events.emit("error", exit_code=e.exit_code, message=e.message)
        raise


def pin_threads(n: int = 1) -> None:
    """Pin BLAS / OpenMP threads (determinism and fair timing). Call before importing numpy-heavy code."""
    import os

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:
        pass


# ---- card building blocks (Metaflow card components) ---------------------------------------------
#
# Every data- or model-derived string (column and class names, labels, values, a candidate's output, an
# error) goes through ``esc`` (Markdown text), ``code`` (inline code) or ``fence`` (a code block) before it
# becomes card Markdown: Metaflow renders card Markdown with `marked`, raw HTML passing through, so an
# unescaped class name could load a remote image (a beacon) or carry a javascript: link.

_CONTROL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MD_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def strip_control(s) -> str:
    """Terminal escape sequences and control characters (tab and newline kept) removed."""
    return _CONTROL.sub("", str(s))


def esc(s, limit: int | None = None) -> str:
    """A data-derived string as literal card Markdown text: no HTML, link, image, emphasis or heading can form."""
    s = strip_control("" if s is None else s).replace("\r", " ").replace("\n", " ")
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    # & < > as entities, then Markdown punctuation as numeric entities (Metaflow's Markdown drops a
    # backslash-escaped character instead of showing it, so backslash escapes cannot be used)
    return _MD_PUNCT.sub(lambda m: f"&#{ord(m.group(1))};", html.escape(s, quote=False))


def code(s, limit: int | None = 200) -> str:
    """A data-derived string as inline code (HTML ``<code>``, escaped: backticks in it cannot end it)."""
    s = strip_control("" if s is None else s)
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    return f"<code>{html.escape(s, quote=True)}</code>"


def fence(text: str, lang: str = "") -> str:
    """A code block whose fence is longer than any backtick run inside (model-written code cannot close it)."""
    text = strip_control(text)
    run = max((len(m) for m in re.findall(r"`+", text)), default=0)
    f = "`" * max(3, run + 1)
    return f"{f}{lang}\n{text}\n{f}"


def kv_text(d, limit: int = 300, *, as_html: bool = False) -> str:
    """Evidence as readable ``key: value`` text (escaped for Markdown, or for HTML with ``as_html``), nested
    values flattened one level."""
    enc = h if as_html else esc
    if not isinstance(d, dict):
        return enc(_cell(d), limit)
    parts = []
    for k, v in d.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, (list, tuple)):
            v = ", ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in list(v)[:8]) + (" …" if len(v) > 8 else "")
        elif isinstance(v, dict):
            v = ", ".join(f"{a}={(f'{b:.4g}' if isinstance(b, float) else b)}" for a, b in list(v.items())[:8])
        parts.append(f"{k}: {v}")
    return enc(" · ".join(parts), limit)


_STATUS_COLORS = {  # (background, border, text)
    "good": ("#e8f5e9", "#2e7d32", "#1b5e20"), "bad": ("#ffebee", "#c62828", "#b71c1c"),
    "warn": ("#fff8e1", "#f9a825", "#8d6e00"), "info": ("#e3f2fd", "#1565c0", "#0d47a1"),
}


def status_kind(status: str | None) -> str:
    s = (status or "").upper()
    if s in ("PASS", "OK", "BUILT"):
        return "good"
    if s in ("FAIL", "FAILED", "ERROR", "NO_SOLUTION"):
        return "bad"
    return "warn" if s else "info"


# tables wrap long cells and scroll sideways inside the page instead of widening it
_PAGE_CSS = ("<style>.loom-banner{box-sizing:border-box;max-width:100%}"
             # size-contained: a wide table inside scrolls instead of widening Metaflow's column (a flex item)
             ".loom-block{contain:inline-size;overflow-x:auto}.loom-block ul{padding-left:1.5em}"
             "table{display:block;max-width:100%;overflow-x:auto}"
             "td,th{overflow-wrap:break-word;max-width:32em}"
             "pre{max-width:100%;overflow-x:auto;white-space:pre-wrap}"
             ".loom-cols{display:flex;flex-wrap:wrap;gap:12px}"
             ".loom-col{box-sizing:border-box;flex:1 1 300px;max-width:100%;border:1px solid #ddd;border-radius:6px;padding:8px 12px}"
             ".loom-badge{display:inline-block;border-radius:10px;padding:1px 8px;margin:2px 4px 2px 0;font-size:12px}"
             "</style>")


def banner(status: str, reason: str, *, title: str = "", facts: list[tuple[str, str]] | None = None, word: str = "VERDICT"):
    """The card's first block: the verdict/status word, coloured, with its one-line reason and a few facts.
    ``title``, ``reason`` and the facts' values are data-derived and escaped here."""
    from metaflow.cards import Markdown

    bg, border, fg = _STATUS_COLORS[status_kind(status)]
    e = lambda x: html.escape(strip_control(x), quote=True)  # noqa: E731
    facts_html = "".join(f"<span style='margin-right:18px'><b>{e(k)}</b> {e(v)}</span>" for k, v in (facts or []))
    return Markdown(
        _PAGE_CSS
        + f"<div class='loom-banner' id='loom-banner' data-status='{e(status)}' style='background:{bg};border-left:6px solid {border};"
        f"padding:12px 16px;margin:0 0 16px 0;border-radius:4px'>"
        + (f"<div style='font-size:13px;color:#555'>{e(title)}</div>" if title else "")
        + f"<div style='font-size:22px;font-weight:700;color:{fg}'>{e(word)}: {e(status)}</div>"
        f"<div style='font-size:15px;margin-top:4px'>{e(reason)}</div>"
        + (f"<div style='font-size:13px;margin-top:8px;color:#333'>{facts_html}</div>" if facts_html else "")
        + "</div>")


def h(s, limit: int | None = None) -> str:
    """A data-derived string as HTML text (inside an HTML block no Markdown applies)."""
    s = strip_control("" if s is None else s).replace("\r", " ").replace("\n", " ")
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    return html.escape(s, quote=True)


def html_block(inner: str):
    """Trusted markup (its data-derived parts through ``h``/``badge``) as one HTML block: one line, so no
    blank line can end the block and let Markdown apply to what follows."""
    from metaflow.cards import Markdown

    return Markdown("<div class='loom-block'>" + inner.replace("\n", " ") + "</div>")


def items_block(items: list[str], empty: str = "none"):
    """A list of trusted HTML items (each built with ``h``/``badge``)."""
    if not items:
        return html_block(f"<p>{h(empty)}</p>")
    return html_block("<ul style='margin:4px 0'>" + "".join(f"<li style='margin:3px 0'>{i}</li>" for i in items) + "</ul>")


def checks_block(checks: list[dict]):
    """Checks as ✓/✗ lines with their numbers (``check``, ``passed``, ``detail``; escaped)."""
    items = []
    for c in checks:
        ok = c.get("passed")
        mark = ("<span class='loom-ok' style='color:#2e7d32;font-weight:700'>✓</span>" if ok else
                "<span class='loom-bad' style='color:#c62828;font-weight:700'>✗</span>" if ok is False else "–")
        items.append(f"{mark} <b>{h(c.get('check', ''))}</b>: {h(c.get('detail', ''), 400)}")
    return items_block(items, "no checks")


def badge(text: str, kind: str = "warn") -> str:
    bg, border, fg = _STATUS_COLORS[kind]
    return f"<span class='loom-badge' style='background:{bg};color:{fg};border:1px solid {border}'>{html.escape(strip_control(text))}</span>"


def card_table(rows: list[dict], columns: list[str] | None = None, limit: int = 50):
    from metaflow.cards import Table

    rows = rows[:limit]
    if not rows:
        return Table([["(none)"]], headers=["-"])
    columns = columns or list(rows[0].keys())
    return Table([[_cell(r.get(c)) for c in columns] for r in rows], headers=[strip_control(c) for c in columns])


def _cell(v):
    if isinstance(v, bool):
        return "✓" if v else "✗"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return strip_control(" · ".join(f"{k}: {(f'{x:.4g}' if isinstance(x, float) else x)}" for k, x in v.items()))[:300]
    if isinstance(v, list):
        return strip_control(", ".join(str(x) for x in v))[:300]
    return "" if v is None else strip_control(v)


def card_image(fig):
    """A matplotlib figure as a card Image (the figure is closed)."""
    import matplotlib.pyplot as plt
    from metaflow.cards import Image

    img = Image.from_matplotlib(fig)
    plt.close(fig)
    return img


_WARMEXEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "warmexec.py")


def main(flow_cls) -> None:
    """``if __name__ == "__main__": flowkit.main(MyFlow)``: run the flow's CLI, and on success leave at
    once instead of tearing the interpreter down.

    Every Metaflow process of a run (the launcher, each task, the card renderer) ends through click's
    ``sys.exit(0)``; with pandas, pyarrow and scikit-learn loaded, Python's teardown then takes
    0.3-0.8 s per process on this box, and the next step waits for it. Metaflow has finished all of its
    writes by then (artifacts, metadata, the card), so after flushing stdout/stderr ``os._exit(0)``
    skips only the teardown. Failures (a non-zero exit) keep the normal path and exit code.

    With ``LOOM_WARM_SOCKET`` set (the bridge started a warm image for this run), the runtime starts
    each task through ``warmexec.py``, which has the image fork it with its imports done (loom_py/runtime/warm.py)."""
    import sys

    _cli_with_configs(flow_cls)
    try:
        warm_socket = os.environ.get("LOOM_WARM_SOCKET")
        if warm_socket:  # tasks go to the bridge's warm image (loom_py/runtime/warm.py) through warmexec.py
            from metaflow import cli, parameters

            from loom_py.runtime import warm

            if warm.SERVED:  # this task's card render goes to the image as well
                warm.route_card_renders(_WARMEXEC)

            flow = flow_cls(use_cli=False)
            with parameters.flow_context(flow_cls):
                cli.main(flow, entrypoint=[sys.executable, "-I", "-S", _WARMEXEC, sys.argv[0]])
        else:
            flow_cls()
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(0)


def _cli_with_configs(flow_cls) -> None:
    """Metaflow adds a flow's ``Config`` options (``--config-value``) to its CLI when ``metaflow.cli`` is first
    imported inside the flow's context. The warm launcher and the warm image import it earlier, for speed
    (runtime/warm.py, bridge._PREWARM), and the warm path below imports it outside the context, so for a flow that
    declares a Config the module is imported (again) here, inside the context, as ``FlowSpec()`` would (<1 ms);
    flows without one are untouched."""
    import importlib
    import sys

    try:
        if not any(getattr(p, "IS_CONFIG_PARAMETER", False) for _, p in flow_cls._get_parameters()):
            return
    except Exception:
        return
    from metaflow import parameters

    with parameters.flow_context(flow_cls):
        mod = sys.modules.get("metaflow.cli")
        if mod is None:
            importlib.import_module("metaflow.cli")  # first import, in the context (the warm path imports it next)
        else:
            importlib.reload(mod)


def final_cards_only() -> None:
    """Call at the top of a flow file: Loom's blank cards are rendered once, when the step ends.

    Metaflow treats a blank card as live-updatable, so after every such step it runs a second
    ``card create --mode refresh`` process (Python + Metaflow start-up, ~0.35 s on this box) that
    stores data for live refreshes no Loom card uses. Marking the card type static skips it; the
    card itself is rendered and stored as before (`metaflow card get`, the Client API, the UI)."""
    try:
        from metaflow.plugins.cards.card_modules.basic import BlankCard

        BlankCard.RUNTIME_UPDATABLE = False
    except Exception:  # a Metaflow without this attribute: nothing to skip
        pass


def _inline_html(line: str) -> str:
    """A line with `code` and **bold** as the only markup: everything else escaped (HTML, links, images)."""
    out = []
    for part in re.split(r"(`[^`]*`|\*\*[^*]+\*\*)", str(line)):
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{h(part[1:-1])}</code>")
        elif part.startswith("**") and part.endswith("**") and len(part) >= 4:
            out.append(f"<b>{h(part[2:-2])}</b>")
        else:
            out.append(h(part))
    return "".join(out)


def card_header(title: str, lines: list[str]):
    """A heading and a list, as one HTML block: the title and lines are escaped here (data-derived text in them
    cannot become HTML, a link or an image); `code` and **bold** in a line keep their meaning."""
    items = "".join(f"<li style='margin:3px 0'>{_inline_html(l)}</li>" for l in lines)
    return html_block(f"{_PAGE_CSS}<h1 style='font-size:1.6em;margin:.4em 0'>{h(title)}</h1><ul>{items}</ul>")
