"""The one Python process a verb runs in.

The CLI writes a request (JSON) on stdin and reads one JSON result from stdout; progress events go to
stderr as ``@@loom {json}`` lines. Two modes:

``{"mode": "flow", "flow": "ingest_flow.py", "flow_name": "IngestDataset", "params": {...},
   "prepare": "loom_py.verbs.ingest:prepare"}``
    runs ``prepare(params)`` first (asserts upstream runs, validates input; raises UsageError before
    anything is written; may return ``config``: Metaflow Config values, e.g. ``loom_resources``), then the flow through Metaflow's CLI with a run-id file, then reads the
    ``loom_result`` artifact and the card's path back through the Client API.

``{"mode": "call", "fn": "loom_py.verbs.datasets:list_datasets", "params": {...}}``
    calls a function that reads the datastore without creating a run (datasets, doctor).

Errors: UsageError → exit 2, DomainError → exit 1, anything else → exit 1 with a one-line message
(the traceback only with ``"debug": true``).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque

from loom_py.runtime import data, events, warm
from loom_py.runtime.errors import LoomError, UsageError

FLOWS_DIR = os.environ.get("LOOM_FLOWS_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "flows")


def _stderr_event(ev: dict) -> None:
    sys.stderr.write(events.MARKER + json.dumps(ev, default=str) + "\n")
    sys.stderr.flush()


def _load(ref: str):
    mod, _, fn = ref.partition(":")
    return getattr(importlib.import_module(mod), fn)


def _flow_args(params: dict) -> list[str]:
    args: list[str] = []
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (dict, list)):
            v = json.dumps(v)
        args += [f"--{k}", str(v)]
    return args


def card_path_of(run) -> str | None:
    """The path of the run's first card on this machine. On the local datastore, the card file itself; on
    a remote one (s3), the card is fetched through the Client's card API into the workspace's cards/
    folder (a browser opens a file, not an s3:// URL), so nothing is read from the launcher's disk but
    what the datastore returns."""
    from metaflow.cards import get_cards

    for step in run:
        for task in step:
            try:
                cards = get_cards(task)
            except Exception:
                continue
            for c in cards:
                if not c.path:
                    continue
                if (os.environ.get("METAFLOW_DEFAULT_DATASTORE") or "local") == "local":
                    root = os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL", "")
                    full = os.path.join(root, ".metaflow", "mf.cards", c.path)
                    return full if os.path.exists(full) else c.path
                return fetch_card(c, task.pathspec)
    return None


def bring_files(run, res: dict) -> dict:
    """The files the run's task kept (runtime/wsfiles.py) materialized in this workspace where missing or
    different, and the result's paths under the task's workspace dir named as this machine's."""
    from loom_py.runtime import wsfiles

    got = wsfiles.materialize(run)
    if not got["files"]:
        return res
    res = wsfiles.remap(dict(res), got["root"])
    msgs = list(res.get("messages") or [])
    if got["restored"]:
        msgs.append(f"brought {len(got['restored'])} file(s) this run wrote back from the datastore into {got['ws']}")
    lost = got["not_stored"] + got["refused"]
    if lost:
        msgs.append(f"{len(lost)} file(s) this run wrote are not here and could not be brought back "
                    f"(over the {wsfiles.cap_bytes() >> 20} MiB cap, or not matching their hash): {', '.join(lost[:3])}")
    res["messages"] = msgs
    return res


def fetch_card(card, pathspec: str) -> str | None:
    """A remote card's HTML written to <workspace>/cards/<Flow>-<run>-<step>-<task>-<hash>.html."""
    ws = os.environ.get("LOOM_WORKSPACE_DIR") or os.getcwd()
    name = "-".join(pathspec.split("/")) + f"-{(card.hash or 'card')[:12]}.html"
    dest = os.path.join(ws, "cards", name)
    try:
        html = card.get()
    except Exception:
        return None
    if not html:
        return None
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = f"{dest}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(tmp, dest)
    return dest


# Where the warm image is off (loom_py/runtime/warm.py): the flow's launcher process, started before prepare: it imports Metaflow (~0.4-0.9 s) while prepare
# checks the input, then waits for one line on stdin: the run's arguments (JSON), or nothing (EOF: prepare
# refused the input) and it exits without touching the datastore. Once it has its arguments it is
# exactly `python flows/x.py ...` (same argv[0], sys.path[0] and __main__), so Metaflow cannot tell.
_PREWARM = r"""
import sys, os, json
flow_file = sys.argv[1]
sys.path[0] = os.path.dirname(os.path.abspath(flow_file))
try:
    import metaflow, metaflow.cli, metaflow.runtime, metaflow.plugins.cards  # noqa: F401
except Exception:
    pass
line = sys.stdin.readline()
if not line.strip():
    raise SystemExit(0)
sys.stdin.close()
sys.stdin = open(os.devnull)
sys.argv = [flow_file] + json.loads(line)
import runpy
runpy.run_path(flow_file, run_name="__main__")
"""


def _prewarm_enabled() -> bool:
    return os.environ.get("LOOM_PREWARM", "1") not in ("0", "false", "no")


def run_flow(req: dict, emit=None) -> dict:
    """``emit``: where the flow's events go (default: this process's stderr, for the CLI); a pipeline stage
    passes its own, to tag and relay them."""
    emit = emit or _stderr_event
    params = dict(req.get("params") or {})
    inputs: list[str] = []
    prep = None
    flow_file = os.path.join(os.environ.get("LOOM_FLOWS_DIR", FLOWS_DIR), req["flow"])
    flow_name = req["flow_name"]
    cwd = os.environ.get("LOOM_WORKSPACE_DIR") or None
    proc = None
    warmed = None
    if warm.enabled() and os.path.exists(flow_file):
        # import once, then fork the launcher (waits for its arguments) and the image (imports what the
        # flow's tasks need, then forks them): loom_py/runtime/warm.py
        warmed = warm.start(flow_file, cwd, req.get("prepare"))
        proc = warmed.launcher if warmed else None
    if proc is None and _prewarm_enabled() and os.path.exists(flow_file):
        try:
            proc = subprocess.Popen([sys.executable, "-c", _PREWARM, flow_file], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, cwd=cwd)
        except OSError:
            proc = None
    try:
        params = data.resolve_params(params, flow_name)  # labels, Flow/latest, run-id prefixes → pathspecs
        if req.get("prepare"):
            prep = _load(req["prepare"])(params) or {}
            params = prep.get("params", params)
            inputs = prep.get("inputs", [])
    except BaseException:
        _abandon(proc)
        if warmed:
            warmed.stop()
        raise
    if prep and isinstance(prep.get("reuse"), str):  # prepare found this very result already in the datastore (ingest)
        _abandon(proc)
        if warmed:
            warmed.stop()
        for p in prep.get("cleanup") or []:
            try:
                os.remove(p)
            except OSError:
                pass
        return _reused(prep["reuse"], prep.get("inputs") or [], prep.get("messages") or [])
    emit({"kind": "prepared"})  # input is valid: the CLI prints its workspace-write note now
    try:
        with tempfile.TemporaryDirectory(prefix="loom-run-") as tmp:
            rid_file = os.path.join(tmp, "run-id")
            args = ["--quiet", "--no-pylint"]
            for name, value in ((prep or {}).get("config") or {}).items():  # Metaflow Configs (e.g. loom_resources)
                args += ["--config-value", name, json.dumps(value)]
            args += ["run", "--run-id-file", rid_file]
            args += req.get("flow_options", [])
            if os.environ.get("LOOM_EXPERIMENT"):  # groups runs for `loom report --experiment NAME`
                args += ["--tag", f"experiment:{os.environ['LOOM_EXPERIMENT']}"]
            args += _flow_args(params)
            t0 = time.time()
            # import the Client API while the flow runs: it is needed right after, and costs ~0.3 s
            warm_client = threading.Thread(target=_warm_client, daemon=True)
            warm_client.start()
            tail: deque[str] = deque(maxlen=400)
            error_event = None
            debug = bool(req.get("debug"))
            if proc is not None:
                try:
                    assert proc.stdin is not None
                    proc.stdin.write(json.dumps(args) + "\n")
                    proc.stdin.close()
                except (OSError, ValueError):  # the launcher died while waiting: start a plain one
                    _abandon(proc)
                    proc = None
            if proc is None:
                proc = subprocess.Popen([sys.executable, flow_file] + args, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1, cwd=cwd)
            assert proc.stdout is not None
            for line in proc.stdout:
                ev = events.parse_line(line)
                if ev is not None:
                    if ev.get("kind") == "error":
                        error_event = ev
                    else:
                        emit(ev)
                    continue
                tail.append(line.rstrip("\n"))
                if debug:
                    sys.stderr.write(line)
            rc = proc.wait()
            if warmed:
                warmed.stop()
            warm_client.join()
            run_id = open(rid_file).read().strip() if os.path.exists(rid_file) else None
        pathspec = f"{flow_name}/{run_id}" if run_id else None
        if rc != 0:
            if error_event:
                return {"ok": False, "exit_code": int(error_event.get("exit_code", 1)),
                        "message": error_event.get("message", "the flow failed"), "pathspec": pathspec}
            last = _last_error_line(tail)
            return {"ok": False, "exit_code": 1, "pathspec": pathspec,
                    "message": f"{flow_name} failed: {last} (see `loom doctor`; rerun with --debug for the log)",
                    "log_tail": list(tail)[-60:] if debug else []}
        from metaflow import Run, namespace

        namespace(None)
        run = Run(pathspec)
        res = run.data.loom_result
        res = bring_files(run, res)  # what the task wrote into its workspace (a remote one's container), here
        out = {"ok": True, "pathspec": pathspec, "card_path": card_path_of(run),
               "flow_seconds": round(time.time() - t0, 3), **res}
        out["inputs"] = list(dict.fromkeys(inputs + list(res.get("inputs") or [])))
        return out
    finally:
        if warmed:
            warmed.stop()
        if prep and prep.get("cleanup"):
            for p in prep["cleanup"]:
                try:
                    os.remove(p)
                except OSError:
                    pass


def _reused(pathspec: str, inputs: list[str], messages: list[str]) -> dict:
    """The result of an existing run, returned instead of making an identical one."""
    run = data.client().Run(pathspec)
    res = dict(run.data.loom_result)
    return {"ok": True, "pathspec": pathspec, "card_path": card_path_of(run), **res,
            "inputs": list(dict.fromkeys(inputs + list(res.get("inputs") or []))),
            "messages": messages + list(res.get("messages") or []), "reused": True}


def _abandon(proc) -> None:
    """Stop a launcher that never got its arguments (prepare refused the input). It has only been
    importing Metaflow, so killing it loses nothing, and exit 2 need not wait for those imports."""
    if proc is None:
        return
    try:
        proc.kill()
        proc.wait(timeout=10)
    except Exception:
        pass
    for f in (proc.stdin, proc.stdout):
        try:
            if f:
                f.close()
        except Exception:
            pass


def _warm_client() -> None:
    try:
        import metaflow  # noqa: F401
        from metaflow.cards import get_cards  # noqa: F401
    except Exception:
        pass


def _last_error_line(tail) -> str:
    lines = [l for l in tail if l.strip()]
    for l in reversed(lines):
        s = l.split(")] ", 1)[-1].strip()
        if s and not s.startswith(("Task failed", "Workflow failed", "Step failure", "Internal error")) and ("Error" in s or "Exception" in s):
            return s[:300]
    return (lines[-1].split(")] ", 1)[-1].strip()[:300]) if lines else "no output"


def call(req: dict) -> dict:
    res = _load(req["fn"])(data.resolve_params(dict(req.get("params") or {})))
    res.setdefault("exit_code", 0)
    res.setdefault("messages", [])
    res.setdefault("next", [])
    res.setdefault("inputs", [])
    return {"ok": True, "pathspec": None, "card_path": None, **res}


# the same rule as src/core/bridge.ts's PROVIDER_SECRET (the CLI already removed these; this holds when the
# bridge is started some other way): model providers' keys and endpoints never reach a flow or a task
_PROVIDER_SECRET = re.compile(r"^(ANTHROPIC_|OPENAI_|AZURE_OPENAI_|CLAUDE_|GEMINI_|GOOGLE_API|MISTRAL_|COHERE_|GROQ_|"
                              r"TOGETHER_|DEEPSEEK_|XAI_|OPENROUTER_|FIREWORKS_|PERPLEXITY_)|(^|_)API_KEY$")


def drop_provider_secrets(env) -> list[str]:
    gone = [k for k in list(env) if _PROVIDER_SECRET.search(k)]
    for k in gone:
        del env[k]
    return gone


def main() -> int:
    drop_provider_secrets(os.environ)
    if os.environ.get("LOOM_STOP_FILE"):
        # the CLI turns Ctrl-C into a stop request (the file LOOM_STOP_FILE names) that the flow's step finishes
        # cleanly on; ignored here, SIGINT stays ignored in every process this one starts (inherited over exec)
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    req = json.loads(sys.stdin.read() or "{}")
    try:
        out = run_flow(req) if req.get("mode") == "flow" else call(req)
    except LoomError as e:
        out = {"ok": False, "exit_code": e.exit_code, "message": e.message}
        if e.status:
            out["status"] = e.status
        if e.summary is not None:
            out["summary"] = e.summary
    except Exception as e:  # a bug: one line, traceback with --debug
        out = {"ok": False, "exit_code": 1, "message": f"internal error: {type(e).__name__}: {e}",
               "traceback": traceback.format_exc() if req.get("debug") else None}
    sys.stdout.write(json.dumps(out, default=str))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    code = main()
    # the result is written and flushed: skip the interpreter's teardown (0.3-0.8 s with pandas, pyarrow
    # and Metaflow loaded), which the CLI would otherwise wait for
    sys.stderr.flush()
    os._exit(code)
