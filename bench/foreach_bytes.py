"""Bytes moved per round by optimize's Metaflow foreach executor: the round's data re-sent in every round
(the reference: foreach.py and optimize_round_flow.py as of commit 3bf426e, an IncludeFile payload holding the
staged files, copied into an artifact by `start`) against the data stored once per search in the round flow's
content-addressed store and passed by reference (now), in one invocation.

On an S3 datastore (moto's S3-compatible server on loopback, in this process, behind a WSGI wrapper that
counts request and response body bytes) and on the local datastore (bytes of the files each round adds
under the datastore root: .metaflow/ and data/, where IncludeFile keeps local uploads). Real rounds: OptimizeRoundFlow runs started by `foreach.run_round` as the search starts
them, real candidates (the offline library's LogisticRegression draft) in the sandbox.

    python bench/foreach_bytes.py [--rows 20000] [--cols 12] [--folds 1] [--rounds 3] [--candidates 2]
"""
import argparse
import collections
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "py"))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "py"), os.environ.get("PYTHONPATH")]))
REFERENCE = "3bf426e"  # the last commit with the data in each round's payload


class Counting:
    """WSGI wrapper: body bytes into the server (PUT/POST) and out of it (GET), and requests by method."""

    def __init__(self, app):
        self.app, self.lock = app, threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.up = self.down = 0
            self.reqs = collections.Counter()

    def __call__(self, environ, start_response):
        m = environ["REQUEST_METHOD"]
        if environ.get("PATH_INFO") == "/__bench__":  # the measuring child: read the counts, then zero them
            with self.lock:
                body = json.dumps({"up": self.up, "down": self.down, "requests": sum(self.reqs.values())}).encode()
            self.reset()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return self._count(m, environ, start_response)

    def _count(self, m, environ, start_response):
        with self.lock:
            self.reqs[m] += 1
            if m in ("PUT", "POST"):
                self.up += int(environ.get("CONTENT_LENGTH") or 0)
        for chunk in self.app(environ, start_response):
            if m == "GET":
                with self.lock:
                    self.down += len(chunk)
            yield chunk


def s3_server():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    app = Counting(DomainDispatcherApplication(create_backend_app))
    srv = make_server("127.0.0.1", port, app, True, request_handler=MotoRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    import boto3

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket="loom")
    return srv, app, port


def reference_code(tmp: str) -> str:
    """The reference executor from git, runnable beside the current package: its foreach module as
    loom_foreach_before, its flow importing from that module, in a flows directory of its own."""
    d = os.path.join(tmp, "flows-before")
    os.makedirs(d)
    mod = subprocess.run(["git", "show", f"{REFERENCE}:py/loom_py/verbs/optimize/foreach.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    flow = subprocess.run(["git", "show", f"{REFERENCE}:flows/optimize_round_flow.py"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    with open(os.path.join(d, "loom_foreach_before.py"), "w") as f:
        f.write(mod)
    with open(os.path.join(d, "optimize_round_flow.py"), "w") as f:
        f.write(flow.replace("from loom_py.verbs.optimize.foreach import", "from loom_foreach_before import"))
    return d


def load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def stage(tmp: str, rows: int, cols: int, nfolds: int):
    import numpy as np
    import pandas as pd

    from loom_py.verbs.optimize import sandbox

    r = np.random.default_rng(4)
    X = pd.DataFrame(r.normal(size=(rows, cols)), columns=[f"x{i}" for i in range(cols)])
    X["y"] = (X["x0"] + 0.5 * X["x1"] + r.normal(scale=0.8, size=rows) > 0).astype(int)
    meta = {"target": "y", "task": "classification"}
    folds = []
    idx = np.arange(rows)
    if nfolds == 1:  # the search's single split (above 10,000 labeled rows): 80/20, the test rows 10%
        va = idx[: rows // 5]
        tr = idx[rows // 5:]
        d = os.path.join(tmp, "data")
        sandbox.stage(d, X.iloc[tr].reset_index(drop=True), X.iloc[va].drop(columns=["y"]).reset_index(drop=True),
                      X.iloc[: rows // 10].drop(columns=["y"]), meta)
        folds.append({"name": None, "data_dir": d})
    else:
        for j, va in enumerate(np.array_split(idx, nfolds)):
            tr = np.setdiff1d(idx, va)
            d = os.path.join(tmp, "data", f"fold-{j + 1}")
            vrows = X.iloc[va].reset_index(drop=True).drop(columns=["y"])
            sandbox.stage(d, X.iloc[tr].reset_index(drop=True), vrows, vrows.head(1), meta)
            folds.append({"name": f"fold-{j + 1}", "data_dir": d})
    return folds


def candidates(n: int) -> list[dict]:
    from loom_py.verbs.optimize import library

    code = library.render("linear", "classification", {"C": 1.0}, plan="bench candidate", drop=[], seed=0)
    return [{"id": i + 1, "code": code.replace("bench candidate", f"bench candidate {i + 1}")} for i in range(n)]


def dir_bytes(d: str) -> int:
    total = 0
    for base, _dirs, files in os.walk(d):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(base, f))
            except OSError:
                pass
    return total


def rounds(mod, flows_dir: str, folds, cands, n: int, ws: str, measure) -> list[dict]:
    os.environ["LOOM_FLOWS_DIR"] = flows_dir
    os.environ["LOOM_WORKSPACE_DIR"] = ws
    out = []
    for i in range(n):
        before = measure(None)
        t0 = time.perf_counter()
        # each round's candidates are new code (as in a search: a round never re-runs a node)
        rc = [{"id": c["id"] + i * len(cands), "code": c["code"].replace("bench candidate", f"bench round {i + 1} candidate")}
              for c in cands]
        res = mod.run_round(rc, folds, {"mem_mb": 4096, "parallel": len(cands)}, None, 120.0, lambda *a, **k: None,
                            os.path.join(ws, "work"))
        dt = time.perf_counter() - t0
        bad = [r["error"] + "\n" + r.get("output", "")[-3000:] for rs in res.values() for r in rs if r["error"]]
        if bad:
            sys.exit(f"a round failed ({flows_dir}): {bad[0]}")
        out.append({"seconds": dt, **measure(before)})
    return out


def one(a):
    """In a fresh interpreter (Metaflow reads its configuration once, at import): one executor's rounds on one
    datastore; the measurements as one JSON line."""
    tmp = a.tmp
    folds = json.load(open(os.path.join(tmp, "folds.json")))
    cands = candidates(a.candidates)
    if a.executor == "before":
        fdir = os.path.join(tmp, "flows-before")
        mod = load_module(os.path.join(fdir, "loom_foreach_before.py"), "loom_foreach_before")
    else:
        from loom_py.verbs.optimize import foreach as mod

        fdir = os.path.join(ROOT, "flows")
    ws = os.path.join(tmp, f"{a.store}-{a.executor}")
    if a.store == "s3":
        import urllib.request

        url = os.environ["METAFLOW_S3_ENDPOINT_URL"] + "/__bench__"

        def measure(prev):
            got = json.loads(urllib.request.urlopen(url).read())
            return {} if prev is None else got
    else:
        root = os.path.join(ws, ".loom")  # .metaflow (artifacts, metadata) and data/ (IncludeFile's local root)

        def measure(prev):
            now = dir_bytes(root)
            return {"_at": now} if prev is None else {"up": now - prev["_at"], "down": None, "requests": None}
    print(json.dumps(rounds(mod, fdir, folds, cands, a.rounds, ws, measure)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--cols", type=int, default=12)
    ap.add_argument("--folds", type=int, default=1, help="1: the search's single split; k: k-fold staging")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--candidates", type=int, default=2)
    ap.add_argument("--one", nargs=3, metavar=("TMP", "STORE", "EXECUTOR"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault("METAFLOW_USER", "bench")
    if a.one:
        a.tmp, a.store, a.executor = a.one
        return one(a)
    tmp = tempfile.mkdtemp(prefix="loom-foreach-bench-")
    try:
        folds = stage(tmp, a.rows, a.cols, a.folds)
        with open(os.path.join(tmp, "folds.json"), "w") as f:
            json.dump(folds, f)
        data_bytes = sum(os.path.getsize(os.path.join(f["data_dir"], n)) for f in folds  # the staged files, whatever format
                         for n in os.listdir(f["data_dir"]))
        reference_code(tmp)
        srv, _counter, port = s3_server()
        results = {}
        for store in ("s3", "local"):
            for name in ("before", "after"):
                ws = os.path.join(tmp, f"{store}-{name}")
                os.makedirs(os.path.join(ws, ".loom"))
                env = dict(os.environ, METAFLOW_DEFAULT_METADATA="local", METAFLOW_DATASTORE_SYSROOT_LOCAL=os.path.join(ws, ".loom"),
                           METAFLOW_DEFAULT_DATASTORE=store)
                if store == "s3":
                    env.update(METAFLOW_DATASTORE_SYSROOT_S3=f"s3://loom/{name}", METAFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
                p = subprocess.run([sys.executable, os.path.abspath(__file__), "--rounds", str(a.rounds), "--candidates",
                                    str(a.candidates), "--one", tmp, store, name], env=env, capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"{store}/{name} failed:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
                results[(store, name)] = json.loads(p.stdout.strip().splitlines()[-1])
        srv.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mb = lambda b: "-" if b is None else f"{b / 1e6:.2f}"  # noqa: E731
    print(f"data staged for the search: {mb(data_bytes)} MB ({a.rows} rows x {a.cols} columns, {len(folds)} fold(s)); "
          f"{a.candidates} candidates per round, {a.rounds} rounds")
    print("\n| datastore | executor | round | MB up | MB down | requests | seconds |")
    print("|---|---|---|---|---|---|---|")
    for (store, name), rs in results.items():
        for i, r in enumerate(rs):
            print(f"| {store} | {name} | {i + 1} | {mb(r['up'])} | {mb(r['down'])} | {r['requests'] if r['requests'] is not None else '-'} "
                  f"| {r['seconds']:.1f} |")
    print("\nper round (mean over the rounds; 'later' = rounds 2.. only, after the search's one upload):")
    for store in ("s3", "local"):
        b, f = results[(store, "before")], results[(store, "after")]
        for label, sel in (("all", slice(None)), ("later", slice(1, None))):
            bb, ff = b[sel], f[sel]
            if not bb:
                continue
            up_b = sum(r["up"] for r in bb) / len(bb)
            up_f = sum(r["up"] for r in ff) / len(ff)
            line = f"  {store:5} {label:5}: up {mb(up_b)} -> {mb(up_f)} MB (x{up_b / max(up_f, 1):.1f} less)"
            if store == "s3":
                tot_b = sum(r["up"] + r["down"] for r in bb) / len(bb)
                tot_f = sum(r["up"] + r["down"] for r in ff) / len(ff)
                line += f"; up+down {mb(tot_b)} -> {mb(tot_f)} MB (x{tot_b / max(tot_f, 1):.2f})"
            print(line)


if __name__ == "__main__":
    main()
