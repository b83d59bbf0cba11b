"""Small helpers every flow uses: the result artifact, error relay, and card building blocks."""

from __future__ import annotations

import contextlib
import json
import os

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

def card_table(rows: list[dict], columns: list[str] | None = None, limit: int = 50):
    from metaflow.cards import Table

    rows = rows[:limit]
    if not rows:
        return Table([["(none)"]], headers=["-"])
    columns = columns or list(rows[0].keys())
    return Table([[_cell(r.get(c)) for c in columns] for r in rows], headers=columns)


def _cell(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)[:200]
    return "" if v is None else str(v)


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


def card_header(title: str, lines: list[str]):
    from metaflow.cards import Markdown

    body = "\n".join(f"- {l}" for l in lines)
    return Markdown(f"# {title}\n\n{body}")
