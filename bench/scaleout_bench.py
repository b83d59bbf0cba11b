"""The happy path on an S3 datastore (moto's S3-compatible server on loopback) against the local datastore,
in one invocation: seconds per verb through build/loom, the ratio, and where the added time goes (bytes
uploaded per verb, the code package's share). After the chain, the verbs that read its runs back: ops
(health, leaderboard), collab, deploy's PLAN, viz, and (s3 only: the local datastore is refused)
pipeline --deploy-to argo.

    python bench/scaleout_bench.py [--rows 2000]
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LOOM, ROOT, loom_python, timed, workspace  # noqa: E402


def bucket_usage(env, prefix):
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["METAFLOW_S3_ENDPOINT_URL"], aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    total = n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="loom", Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            n += 1
            total += o["Size"]
    return n, total


def chain(ws, env, rows, remote=False):
    with open(os.path.join(ws, "data.csv"), "w") as f:
        import random

        r = random.Random(5)
        f.write("a,b,g,y\n")
        for i in range(rows):
            a, b = r.random() * 2 - 1, r.random() * 2 - 1
            f.write(f"{a:.4f},{b:.4f},{'uv'[i % 2]},{int(a + 0.5 * b + (r.random() - 0.5) * 0.8 > 0)}\n")
    out, steps = {}, []

    def go(name, args):
        dt, p = timed([LOOM, *args, "--json"], cwd=ws, env=env)
        out[name] = dt
        res = json.loads(p.stdout)
        steps.append((name, res))
        return res

    ds = go("ingest", ["ingest", "--source", "data.csv"])["pathspec"]
    go("eda", ["eda", "--dataset", ds, "--target", "y"])
    fs = go("features", ["features", "--dataset", ds, "--target", "y", "--recipe", "standard"])["pathspec"]
    rn = go("run", ["run", "--dataset", fs, "--metric", "Maximize ROC-AUC", "--target", "y", "--steps", "2", "--parallel", "2",
                    "--executor", "metaflow", "--model-provider", "offline", "--yes"])["pathspec"]
    # calibrated, as deploy's own chain does; deploy below plans only a PASS: on this table validate FAILs its duplicates
    # check (2% of the features' holdout rows are in the CV rows), so deploy's row times the refusal (the status line says)
    vs = go("validate", ["validate", "--dataset", fs, "--target", "y", "--model", rn, "--max-ece", "0.2", "--calibrate", "sigmoid"])["pathspec"]
    rp = go("report", ["report", "--run", vs])["pathspec"]
    go("datasets", ["datasets"])
    go("ops", ["ops"])
    go("ops board", ["ops", "--leaderboard"])
    go("collab", ["collab", "--run", rp])
    go("deploy", ["deploy", "--validate", vs, "--name", "m"])
    go("viz", ["viz", "--run", rn])
    if remote:
        env = dict(env, METAFLOW_KUBERNETES_CONTAINER_IMAGE="registry.example/loom-runtime:0.1")
        go("argo", ["pipeline", "--dataset", ds, "--target", "y", "--metric", "Maximize ROC-AUC", "--steps", "3", "--deploy-to", "argo"])
    return out, steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    a = ap.parse_args()
    srv = subprocess.Popen([loom_python(), os.path.join(ROOT, "test", "fixtures", "s3-server.py"), "loom"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    port = int(srv.stdout.readline().split()[1])
    base = dict(os.environ)
    base.pop("METAFLOW_USER", None)
    local_env = {k: v for k, v in base.items() if not k.startswith("METAFLOW_")}
    local_env["METAFLOW_HOME"] = workspace()
    s3_env = dict(local_env, METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3="s3://loom/bench",
                  METAFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                  AWS_DEFAULT_REGION="us-east-1")
    try:
        local, local_steps = chain(workspace(), local_env, a.rows)
        s3_ws = workspace()
        remote, remote_steps = chain(s3_ws, s3_env, a.rows, remote=True)
        n, total = bucket_usage(s3_env, "bench")
        # one code package's size, read back through the Client from the S3 workspace's metadata
        code = ("import json; from metaflow import Flow, namespace; namespace(None); r = Flow('ValidateFlow').latest_run; "
                "t = next(t for s in r for t in s if t.code is not None); print(json.dumps({'pkg': len(t.code._code_obj.getvalue())}))")
        env = dict(s3_env, METAFLOW_USER="bench", METAFLOW_DEFAULT_METADATA="local", METAFLOW_DATASTORE_SYSROOT_LOCAL=os.path.join(s3_ws, ".loom"))
        p = subprocess.run([loom_python(), "-c", code], env=env, capture_output=True, text=True)
        pkg = json.loads(p.stdout.strip().splitlines()[-1])["pkg"] if p.returncode == 0 else -1
    finally:
        srv.stdin.close()
        srv.wait(timeout=30)
    print(f"rows {a.rows}; seconds per verb through build/loom (one run each, same machine, same invocation)")
    print(f"{'verb':<10}{'local s':>9}{'s3 s':>9}{'s3/local':>10}{'added s':>9}")
    for k in local:
        print(f"{k:<10}{local[k]:>9.2f}{remote[k]:>9.2f}{remote[k] / local[k]:>10.2f}{remote[k] - local[k]:>9.2f}")
    for k in sorted(set(remote) - set(local)):  # s3 only
        print(f"{k:<10}{'—':>9}{remote[k]:>9.2f}{'':>10}{'':>9}")
    tl, tr = sum(local.values()), sum(remote[k] for k in local)
    # what each verb answered (a refused deploy would time a refusal, not a plan)
    print("status local / s3: " + ", ".join(f"{n} {l.get('verdict') or l.get('status')}/{r.get('verdict') or r.get('status')}"
                                            for (n, l), (_, r) in zip(local_steps, remote_steps)))
    print(f"{'total':<10}{tl:>9.2f}{tr:>9.2f}{tr / tl:>10.2f}{tr - tl:>9.2f}")
    print(f"bucket after the chain: {n} objects, {total / 2**20:.2f} MiB; one code package {pkg / 2**20:.2f} MiB" if pkg > 0
          else f"bucket after the chain: {n} objects, {total / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
