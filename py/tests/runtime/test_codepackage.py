"""loom_py travels in Metaflow's code package (loom_py/__init__.py sets METAFLOW_PACKAGE_POLICY = "include").

A real ingest run (through the bridge, as the CLI starts it) uploads its code package to the datastore. The
package, fetched back through the Client API and extracted alone into an empty directory, must hold
loom_py with its data files, and a step of the run must execute from there with nothing of py/ on the path,
the way a Kubernetes or Batch container runs it (PYTHONPATH from Metaflow's own post-extract settings).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PY = os.path.join(ROOT, "py")
FLOWS = os.path.join(ROOT, "flows")


def _env(ws: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "LOOM_", "PYTHONPATH"))}
    env.update({
        "METAFLOW_USER": "loom-tests", "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": ws, "METAFLOW_FEAT_ALWAYS_UPLOAD_CODE_PACKAGE": "1",
        "LOOM_WORKSPACE_DIR": ws, "LOOM_TMP": os.path.join(ws, "tmp"), "LOOM_FLOWS_DIR": FLOWS,
        "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg", "LOOM_WARM": "0",
    })
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("codepkg")
    ws = str(base / ".loom")
    os.makedirs(os.path.join(ws, "tmp"))
    src = base / "data.csv"
    src.write_text("a,b,y\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(60)))
    req = {"mode": "flow", "flow": "ingest_flow.py", "flow_name": "IngestDataset", "prepare": "loom_py.verbs.ingest:prepare",
           "params": {"source": str(src)}}
    p = subprocess.run([sys.executable, "-m", "loom_py.runtime.bridge"], input=json.dumps(req), capture_output=True, text=True,
                       cwd=ws, env=_env(ws, PYTHONPATH=PY), timeout=300)
    out = json.loads(p.stdout)
    assert out["ok"], out
    return {"ws": ws, "base": base, "pathspec": out["pathspec"]}


def _client(ws: str, code: str) -> dict:
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ws, env=_env(ws), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_uploaded_package_alone_imports_loom_py_and_runs_a_step(run, tmp_path):
    ws, pathspec = run["ws"], run["pathspec"]
    dest = tmp_path / "container"
    dest.mkdir()
    # fetched through the Client (no py/ on this path either): the package the run uploaded
    info = _client(ws, f"""
import json
from metaflow import Run, namespace
from metaflow.package import MetaflowPackage
namespace(None)
run = Run({pathspec!r})
# the runtime registers the package with the tasks launched once its upload is done (FEAT_ALWAYS_UPLOAD_CODE_PACKAGE)
task = next(t for s in run for t in s if t.code is not None)
code = task.code
code.tarball.extractall({str(dest)!r})
meta = json.loads(task.metadata_dict['code-package']).get('metadata')
env = MetaflowPackage.get_post_extract_env_vars(meta, dest_dir={str(dest)!r})
params = [t.id for t in run['_parameters']]
print(json.dumps({{"env": env, "flow": code.info["script"], "params": params}}))
""")
    assert (dest / info["flow"]).is_file()
    mf_code = dest / ".mf_code"
    assert (mf_code / "loom_py" / "__init__.py").is_file(), sorted(os.listdir(dest))
    # data files inside loom_py travel, not only *.py
    assert (mf_code / "loom_py" / "verbs" / "train" / "budgets.json").is_file()
    assert not any(f.endswith(".pyc") for _d, _s, fs in os.walk(mf_code / "loom_py") for f in fs)

    env = _env(ws)
    for k, v in info["env"].items():  # as the container's `export` lines (metaflow_environment.get_package_commands)
        env[k.rstrip(":")] = v if k.endswith(":") or not env.get(k) else f"{v}:{env[k]}"
    assert PY not in env.get("PYTHONPATH", ""), env.get("PYTHONPATH")
    # the container's interpreter finds loom_py (and its data) in the package, not in the repository
    probe = subprocess.run([sys.executable, "-c", "import json, loom_py, loom_py.verbs.train as t; "
                            "print(json.dumps({'file': loom_py.__file__, 'budgets': sorted(t.load_budgets() if hasattr(t, 'load_budgets') else json.load(open(t.BUDGETS_FILE)))}))"],
                           capture_output=True, text=True, cwd=str(dest), env=env, timeout=120)
    assert probe.returncode == 0, probe.stderr[-1500:]
    got = json.loads(probe.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(dest)), got
    assert got["budgets"]

    # a step of the run, executed from the extracted package as Metaflow's remote runtime would: the same
    # `step` command, its inputs (the IncludeFile'd data) read from the datastore, a new task id
    run_id = pathspec.split("/")[1]
    # the launcher registers the task id (as Metaflow's runtime does before it hands a task to a container)
    task_id = _client(ws, f"""
import json
from metaflow.metaflow_environment import MetaflowEnvironment
from metaflow.plugins.metadata_providers.local import LocalMetadataProvider
class F: name = {pathspec.split('/')[0]!r}
print(json.dumps({{"id": LocalMetadataProvider(MetaflowEnvironment(F), F, None, None).new_task_id({run_id!r}, 'start')}}))
""")["id"]
    step = subprocess.run([sys.executable, info["flow"], "--quiet", "--no-pylint", "--datastore", "local", "--metadata", "local",
                           "step", "start", "--run-id", run_id, "--task-id", str(task_id),
                           "--input-paths", f"{run_id}/_parameters/{info['params'][0]}"],
                          capture_output=True, text=True, cwd=str(dest), env=env, timeout=300)
    assert step.returncode == 0, (step.stdout + step.stderr)[-3000:]
    res = _client(ws, f"""
import json
from metaflow import Task, namespace
namespace(None)
t = Task({pathspec!r} + '/start/' + {str(task_id)!r})
print(json.dumps({{"ok": t.successful, "rows": t.data.rows}}))
""")
    assert res["ok"] and res["rows"] == 60


def test_local_speedups_step_aside_on_remote_compute(monkeypatch):
    """The warm image forks tasks on this machine and the sidecar takes a "spare" core the kernel reports:
    neither holds on Kubernetes/Batch, so both are off in a launcher started with --with kubernetes|batch
    (LOOM_METAFLOW_WITH, set by the CLI) and inside a remote task (METAFLOW_RUNTIME_ENVIRONMENT)."""
    from loom_py.runtime import sidecar, warm

    for k in ("LOOM_METAFLOW_WITH", "METAFLOW_RUNTIME_ENVIRONMENT", "METAFLOW_KUBERNETES_WORKLOAD", "LOOM_WARM", "LOOM_SIDECAR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(sidecar, "spare_cores", lambda: 3)
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        pytest.skip("the speed-ups are Linux-only")
    assert warm.enabled() and sidecar.enabled() and sidecar.remote_compute() is None
    for env in ({"LOOM_METAFLOW_WITH": "kubernetes:image=loom:1"}, {"LOOM_METAFLOW_WITH": "retry batch"},
                {"METAFLOW_RUNTIME_ENVIRONMENT": "kubernetes"}, {"METAFLOW_RUNTIME_ENVIRONMENT": "aws-batch"}):
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            assert sidecar.remote_compute() in ("kubernetes", "batch")
            assert not warm.enabled() and not sidecar.enabled(), env
    monkeypatch.setenv("LOOM_METAFLOW_WITH", "retry:times=2")  # a local decorator is not remote compute
    assert warm.enabled() and sidecar.enabled()


def test_task_resources_defaults_and_overrides(monkeypatch):
    from loom_py.runtime.data import task_resources

    monkeypatch.delenv("LOOM_RESOURCES_CPU", raising=False)
    monkeypatch.delenv("LOOM_RESOURCES_MEMORY_MB", raising=False)
    assert task_resources("optimize") == {"cpu": 4, "memory": 16384}
    monkeypatch.setenv("LOOM_RESOURCES_MEMORY_MB", "65536")
    assert task_resources("validate")["memory"] == 65536
