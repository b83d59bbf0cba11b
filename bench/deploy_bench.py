"""loom deploy on the bundled example (examples/churn.csv without its identifier column): PLAN and --apply
wall time against a plain MLflow script doing the same work, and what `mlflow models serve` gives on the
promoted model.

Measurements, in this one invocation (medians printed; each Loom phase runs next to its plain counterpart,
which goes first alternating round by round, and the ratios are also paired by round):
  loom plan     `loom deploy --validate V --name churn` from spawn to exit (bridge, Metaflow run, staging
                the pyfunc model + manifest, card)
  loom apply    `loom deploy ... --apply` answered "y" in a real pty (test/fixtures/pty_answer.py): re-verify
                the hashes, register a version, move the alias, journal, record, card
  plain save    `python ref.py save`: import MLflow, save the same pyfunc model (same wrapper, artifacts,
                signature, example, requirements) to a folder
  plain apply   `python ref.py register`: import MLflow, log that folder to a run, register a version,
                set the alias, in the same SQLite registry layout
Goal: each Loom phase within 1.3x of its plain counterpart.

Serving: `mlflow models serve -m models:/churn@champion --env-manager local` on a loopback port; p50/p99
latency of 200 one-row requests, and rows/s over 20 requests of 1,000 rows.

Usage: python bench/deploy_bench.py [--rounds=N]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from common import LOOM, loom_python  # noqa: E402

REF = r'''
import json, os, pickle, sys, time
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
what, stage, uri, name = sys.argv[1:5]
import mlflow, mlflow.pyfunc
from mlflow import MlflowClient
if what == "save":
    src = json.load(open(os.path.join(stage, "src.json")))
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    kind = {"i": "long", "f": "double", "b": "boolean"}
    df = pd.read_parquet(src["parquet"])
    feats = [c for c in df.columns if c != src["target"]]
    types = {c: kind.get(df[c].dtype.kind, "string") for c in feats}
    ins = Schema([ColSpec(types[c], c, required=not bool(df[c].isna().any())) for c in feats])
    outs = Schema([ColSpec("long", "prediction"), ColSpec("double", "proba_0"), ColSpec("double", "proba_1")])
    ex = pd.DataFrame({c: [{"long": 0, "double": 0.0, "boolean": False, "string": ""}[types[c]]] for c in feats})
    out = os.path.join(stage, "model")
    if os.path.exists(out):
        import shutil; shutil.rmtree(out)
    mlflow.pyfunc.save_model(out, python_model=src["wrapper"], artifacts=src["artifacts"], code_paths=[src["code"]],
                             signature=ModelSignature(inputs=ins, outputs=outs), input_example=ex,
                             pip_requirements=src["requirements"])
else:
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = c.get_experiment_by_name("plain") or None
    eid = exp.experiment_id if exp else c.create_experiment("plain", artifact_location="file://" + os.path.join(stage, "artifacts"))
    r = c.create_run(eid)
    c.log_artifacts(r.info.run_id, os.path.join(stage, "model"), "model")
    c.set_terminated(r.info.run_id)
    try:
        c.create_registered_model(name)
    except Exception:
        pass
    mv = c.create_model_version(name, source=r.info.artifact_uri + "/model", run_id=r.info.run_id)
    c.set_registered_model_alias(name, "champion", mv.version)
'''


def run(cmd, cwd, env=None, ok=(0,)):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode not in ok:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}")
    return dt, p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    rounds = next((int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--rounds=")), 3)
    py = loom_python()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.setdefault("LOOM_PYTHON", py)
    ws = tempfile.mkdtemp(prefix="loom-bench-deploy-")
    subprocess.run([py, "-c", "import pandas as pd, sys; pd.read_csv(sys.argv[1]).drop(columns=['customer_id'])"
                    ".to_csv(sys.argv[2], index=False)", os.path.join(ROOT, "examples", "churn.csv"),
                    os.path.join(ws, "churn.csv")], check=True)
    _, p = run([LOOM, "ingest", "--source", "churn.csv", "--json"], ws, env)
    ds = json.loads(p.stdout)["pathspec"]
    _, p = run([LOOM, "validate", "--dataset", ds, "--target", "churned", "--threshold", "0.6", "--json"], ws, env)
    v = json.loads(p.stdout)
    assert v["verdict"] == "PASS", v["summary"]["reasons"]
    V = v["pathspec"]

    # the plain script's inputs: the same bytes Loom stages (taken from a first plan)
    _, p = run([LOOM, "deploy", "--validate", V, "--name", "churn", "--json"], ws, env)
    stage = json.loads(p.stdout)["summary"]["stage_dir"]
    ref = tempfile.mkdtemp(prefix="loom-bench-plain-")
    src_dir = os.path.join(ref, "src")
    shutil.copytree(os.path.join(stage, "model", "artifacts"), src_dir)
    shutil.copytree(os.path.join(stage, "model", "code", "loom_py"), os.path.join(ref, "code", "loom_py"))
    parquet = os.path.join(ref, "data.parquet")
    subprocess.run([py, "-c", "import io, sys, os; os.environ['METAFLOW_DATASTORE_SYSROOT_LOCAL']=sys.argv[1]; "
                    "from metaflow import Run, namespace; namespace(None); open(sys.argv[3], 'wb').write(Run(sys.argv[2]).data.data_parquet)",
                    os.path.join(ws, ".loom"), ds, parquet], check=True, env={**env, "METAFLOW_DEFAULT_METADATA": "local", "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_USER": "bench"})
    reqs = open(os.path.join(stage, "model", "requirements.txt")).read().split()
    json.dump({"parquet": parquet, "target": "churned", "wrapper": os.path.join(stage, "model", "pyfunc_model.py"),
               "artifacts": {"model": os.path.join(src_dir, "model.pkl"), "loom": os.path.join(src_dir, "loom.json")},
               "code": os.path.join(ref, "code", "loom_py"), "requirements": reqs}, open(os.path.join(ref, "src.json"), "w"))
    ref_py = os.path.join(ref, "ref.py")
    open(ref_py, "w").write(REF)
    ref_uri = "sqlite:///" + os.path.join(ref, "mlflow.db")

    t = {"loom plan": [], "loom apply": [], "plain save": [], "plain apply": []}
    load0 = os.getloadavg()
    pty = os.path.join(ROOT, "test", "fixtures", "pty_answer.py")
    for i in range(rounds + 1):  # round 0 warms both (first registry creation, page cache); not counted
        # each Loom phase next to its plain counterpart (the same moment's load), which one goes first alternating
        plan = lambda: run([LOOM, "deploy", "--validate", V, "--name", "churn"], ws, env)[0]  # noqa: E731
        save = lambda: run([py, ref_py, "save", ref, ref_uri, "churn"], ref, env)[0]  # noqa: E731
        a, c = (plan(), save()) if i % 2 == 0 else reversed((save(), plan()))

        def apply():
            dt, p = run([py, pty, "y", LOOM, "deploy", "--validate", V, "--name", "churn", "--apply"], ws, env)
            assert json.loads(p.stdout)["code"] == 0, p.stdout[-1500:]
            return dt

        register = lambda: run([py, ref_py, "register", ref, ref_uri, "churn"], ref, env)[0]  # noqa: E731
        b, d = (apply(), register()) if i % 2 == 0 else reversed((register(), apply()))
        if i:
            for k, x in zip(t, (a, b, c, d)):
                t[k].append(x)
    med = {k: statistics.median(x) for k, x in t.items()}
    print(f"deploy bench on examples/churn.csv (2,000 rows, identifier dropped), {rounds} rounds after one warm-up")
    for k, x in t.items():
        print(f"  {k:12s} median {med[k]:6.2f} s   ({', '.join(f'{y:.2f}' for y in x)})")
    for k, ref_k, what in (("loom plan", "plain save", "plan / plain save  "), ("loom apply", "plain apply", "apply / plain apply")):
        paired = [a / b for a, b in zip(t[k], t[ref_k])]  # the same round: the same load, near in time
        print(f"  {what}    {med[k] / med[ref_k]:.2f}x of medians; paired by round min {min(paired):.2f}x, "
              f"median {statistics.median(paired):.2f}x   (goal <= 1.3x)")
    tot = (med["loom plan"] + med["loom apply"]) / (med["plain save"] + med["plain apply"])
    print(f"  plan+apply / plain     {tot:.2f}x")
    print(f"  load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in load0)} before the timed rounds, "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} after ({os.cpu_count()} cores)")

    # ---- serving ----
    port = free_port()
    senv = {**env, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": "sqlite:///" + os.path.join(ws, ".loom", "mlflow", "mlflow.db"),
            "PATH": os.path.dirname(py) + os.pathsep + env.get("PATH", "")}
    senv.pop("PYTHONPATH", None)
    t0 = time.perf_counter()
    srv = subprocess.Popen([os.path.join(os.path.dirname(py), "mlflow"), "models", "serve", "-m", "models:/churn@champion",
                            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], env=senv,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except Exception:
                if srv.poll() is not None or time.perf_counter() - t0 > 120:
                    sys.exit("mlflow models serve did not start")
                time.sleep(0.1)
        start_s = time.perf_counter() - t0
        cols = ["tenure_months", "plan", "region", "monthly_charges", "support_tickets", "usage_hours", "age", "signup_date"]
        row = [42, "premium", "west", 78.64, 1, 39.2, 21.0, "2021-01-01"]

        def post(rows):
            body = json.dumps({"dataframe_split": {"columns": cols, "data": rows}}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
            s = time.perf_counter()
            out = json.loads(urllib.request.urlopen(req, timeout=60).read())
            assert len(out["predictions"]) == len(rows)
            return time.perf_counter() - s

        for _ in range(10):
            post([row])
        one = sorted(post([row]) for _ in range(200))
        batch = [row] * 1000
        tb = [post(batch) for _ in range(20)]
        p50, p99 = one[len(one) // 2], one[int(len(one) * 0.99) - 1]
        print(f"serving (mlflow models serve, 1 uvicorn worker): started in {start_s:.1f} s")
        print(f"  one-row request   p50 {p50 * 1000:.1f} ms   p99 {p99 * 1000:.1f} ms   (200 requests)")
        print(f"  1,000-row batch   median {statistics.median(tb) * 1000:.0f} ms   {1000 / statistics.median(tb):,.0f} rows/s   (20 requests)")
    finally:
        try:
            os.killpg(srv.pid, signal.SIGTERM)
            srv.wait(timeout=15)
        except Exception:
            os.killpg(srv.pid, signal.SIGKILL)
    shutil.rmtree(ws, ignore_errors=True)
    shutil.rmtree(ref, ignore_errors=True)


if __name__ == "__main__":
    main()
