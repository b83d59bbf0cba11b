"""`loom pipeline --deploy-to argo`: the pipeline compiled into an Argo Workflows WorkflowTemplate, not run.

Metaflow's own compiler does it (``python flows/pipeline_flow.py argo-workflows create --only-json``): it
uploads the flow's code package (``loom_py`` inside it, decision 0900) to the S3 datastore and prints the
template; nothing is sent to a cluster. The pipeline's options (checked exactly as ``loom pipeline`` checks
them) become the template's ``options`` parameter default (``LOOM_PIPELINE_OPTIONS``, read by the flow file),
so a submitted workflow runs the pipeline that was described here. The template is written under
``<workspace>/artifacts/pipeline/<id>/workflow-template.json``; creating it on a cluster is the user's
``argo template create`` (Loom does not offer it: that would be an external, irreversible action).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from loom_py.runtime.errors import DomainError, UsageError
from loom_py.verbs import pipeline

TEMPLATE = "workflow-template.json"


def _flow_file() -> str:
    from loom_py.runtime.bridge import FLOWS_DIR

    return os.path.join(os.environ.get("LOOM_FLOWS_DIR") or FLOWS_DIR, "pipeline_flow.py")


def _last_line(text: str) -> str:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for l in reversed(lines):
        if "Error" in l or "error" in l or "Exception" in l:
            return l[:300]
    return lines[-1][:300] if lines else "no output"


def compile_template(opts: dict, cwd: str | None = None) -> tuple[dict, str]:
    """(the WorkflowTemplate, Metaflow's log) for PipelineFlow with ``opts`` as its options default."""
    env = dict(os.environ, LOOM_PIPELINE_OPTIONS=json.dumps(opts, sort_keys=True))
    p = subprocess.run([sys.executable, _flow_file(), "--no-pylint", "argo-workflows", "create", "--only-json"],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    out = p.stdout
    if p.returncode != 0 or "{" not in out:
        raise DomainError(f"Metaflow could not compile PipelineFlow for Argo Workflows: {_last_line(p.stderr + out)}",
                          status="FAILED")
    try:
        return json.loads(out[out.index("{"):]), p.stderr
    except ValueError as e:
        raise DomainError(f"Metaflow's Argo Workflows template is not JSON ({e})", status="FAILED")


def _env_of(container: dict) -> dict:
    return {e.get("name"): e.get("value") for e in container.get("env") or [] if isinstance(e, dict)}


def describe_template(tpl: dict) -> dict:
    """What the template says: its name, the image, the code package, each step (in DAG order) and its requests."""
    templates = tpl.get("spec", {}).get("templates") or []
    dag = next((t for t in templates if "dag" in t), None)
    order = [t.get("template") or t.get("name") for t in (dag or {}).get("dag", {}).get("tasks", [])]
    steps = []
    code_url = code_sha = None
    images = set()
    by_name = {t.get("name"): t for t in templates}
    for name in order:
        t = by_name.get(name) or {}
        c = t.get("container") or {}
        env = _env_of(c)
        code_url = code_url or env.get("METAFLOW_CODE_URL")
        code_sha = code_sha or env.get("METAFLOW_CODE_SHA")
        if c.get("image"):
            images.add(c["image"])
        req = (c.get("resources") or {}).get("requests") or {}
        steps.append({"name": name, "image": c.get("image"), "cpu": req.get("cpu"), "memory": req.get("memory")})
    params = {p.get("name"): p.get("value") for p in tpl.get("spec", {}).get("arguments", {}).get("parameters", [])}
    return {"kind": tpl.get("kind"), "name": tpl.get("metadata", {}).get("name"),
            "namespace": tpl.get("metadata", {}).get("namespace"), "image": sorted(images)[0] if len(images) == 1 else sorted(images),
            "code_package": code_url, "code_sha": code_sha, "steps": steps, "parameters": sorted(params)}


def deploy(params: dict) -> dict:
    """Call mode (no run): check the options as ``loom pipeline`` does, compile, write the template."""
    if params.get("resume"):
        raise UsageError("--deploy-to argo compiles a new pipeline: drop --resume (a scheduled run resumes on its own cluster)")
    opts = pipeline.options_of(params)
    if opts["model_provider"] != "offline":
        raise UsageError(f"--deploy-to argo runs the search on the cluster, where the {opts['model_provider']} API key "
                         "must not go: use --model-provider offline")
    if (os.environ.get("METAFLOW_DEFAULT_DATASTORE") or "local") == "local":  # the CLI refuses it first; this holds alone
        raise UsageError("--deploy-to argo needs a shared datastore (METAFLOW_DEFAULT_DATASTORE=s3)")
    info = pipeline.check(opts)  # every check the stages' prepare would make, before anything is uploaded
    from loom_py.runtime.bridge import _stderr_event

    _stderr_event({"kind": "prepared"})  # the input is good: the CLI prints its workspace-write note now
    ws = os.environ.get("LOOM_WORKSPACE_DIR") or os.getcwd()
    t0 = time.perf_counter()
    tpl, _log = compile_template(opts, cwd=ws)
    d = describe_template(tpl)
    if d["kind"] != "WorkflowTemplate" or not d["steps"]:
        raise DomainError(f"Metaflow's output is not a WorkflowTemplate with steps (kind {d['kind']!r})", status="FAILED")
    tid = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + (d["code_sha"] or "nocode")[:8]
    out_dir = os.path.join(ws, "artifacts", "pipeline", tid)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, TEMPLATE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(tpl, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    metadata = os.environ.get("METAFLOW_DEFAULT_METADATA") or "local"
    msgs = [f"compiled by Metaflow (argo-workflows create --only-json): nothing was sent to a cluster; the code package "
            f"is in the datastore at {d['code_package']}"]
    if metadata != "service":
        msgs.append("metadata is local: a scheduled run's stages would not find "
                    f"{opts['dataset']} from the cluster, and its runs would not be visible here; set "
                    "METAFLOW_DEFAULT_METADATA=service and METAFLOW_SERVICE_URL before creating the template")
    summary = {"mode": "deploy", "deploy_to": "argo-workflows", "template_path": path, "template_id": tid,
               "workflow_template": d["name"], "namespace": d["namespace"], "image": d["image"],
               "code_package": d["code_package"], "code_sha": d["code_sha"], "steps": d["steps"],
               "parameters": d["parameters"], "metadata": metadata, "dataset": opts["dataset"], "target": opts["target"],
               "options": opts, "rows": info["rows"], "seconds": round(time.perf_counter() - t0, 3)}
    return {"status": "OK", "summary": summary, "inputs": [opts["dataset"]], "messages": msgs,
            "next": [f"argo template create {path}", f"argo submit --from workflowtemplate/{d['name']}"]}
