"""`loom open RUN`: the path of a run's card on this machine (the CLI opens it in a browser where it can).

The run reference is resolved by the bridge like every other (a pathspec, Flow/latest, a run-id prefix, a data
object's label); the card is found the way the bridge finds a finished run's card (``card_path_of``: the file in
the local datastore, or fetched from a remote one into ``<workspace>/cards/``). The files the run's task kept
(``runtime/wsfiles.py``: a model card, PNGs, a staged model) are brought into the workspace where missing."""

from __future__ import annotations

from loom_py.runtime.bridge import card_path_of
from loom_py.runtime.data import resolve_run
from loom_py.runtime.errors import UsageError


def card(params: dict) -> dict:
    ref = params.get("run")
    if not ref:
        raise UsageError("open needs a run: `loom open IngestDataset/N` (or a label, Flow/latest, a run-id prefix)")
    run = resolve_run(ref, None, require_success=False)
    path = card_path_of(run)
    if not path:
        raise UsageError(f"{run.pathspec} has no card (yet): a run that is still going or died before its card was "
                         "made has none; `loom runs` shows its status")
    # the files the run wrote (a model card, PNGs, a staged model), brought here where missing (runtime/wsfiles.py)
    from loom_py.runtime import wsfiles

    got = wsfiles.materialize(run, only_missing=True)
    msgs = [f"brought {len(got['restored'])} file(s) {run.pathspec} wrote back from the datastore into {got['ws']}"] if got["restored"] else []
    return {"status": "OK", "card_path": path, "inputs": [run.pathspec], "messages": msgs,
            "summary": {"pathspec": run.pathspec, "card_path": path, "files_restored": got["restored"]}}
