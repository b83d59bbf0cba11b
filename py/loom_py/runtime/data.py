"""Data objects: how a table lives in the Metaflow datastore and how any verb gets it back.

A *data object* is a successful run whose artifacts include ``data_parquet`` (the table as Parquet
bytes: portable, typed, no pickle of a DataFrame), ``schema``, ``rows``, ``n_columns``,
``content_hash``, ``label`` and ``lineage``. ``IngestDataset`` runs create them at the ingest boundary;
``FeaturesFlow`` runs create new ones. Verbs receive a pathspec and load through the Client API, so a
flow runs unchanged on Metaflow's remote compute.
"""

from __future__ import annotations

import hashlib
import io
import os
import re

from loom_py.runtime.errors import UsageError, did_you_mean


def sha256_file(path: str) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

DATASET_FLOWS = ("IngestDataset", "FeaturesFlow")
PATHSPEC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*/[A-Za-z0-9_.-]+$")


def datastore_type() -> str:
    """local or s3: the datastore the CLI pointed Metaflow at (src/core/scaleout.ts)."""
    return os.environ.get("METAFLOW_DEFAULT_DATASTORE") or "local"


def datastore_root() -> str:
    if datastore_type() == "s3":
        return os.environ.get("METAFLOW_DATASTORE_SYSROOT_S3", "")
    return os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL", "")


def require_datastore() -> str:
    root = datastore_root()
    if datastore_type() != "local":
        # runs and artifacts are remote: the Client API is the only way to them (resolve_run says when not found)
        if not root:
            raise UsageError("the s3 datastore needs METAFLOW_DATASTORE_SYSROOT_S3=s3://BUCKET/PREFIX: run `loom doctor`")
        return root
    if not root or not os.path.isdir(os.path.join(root, ".metaflow")):
        raise UsageError(
            f"no Loom datastore at {root or '(unset)'}: ingest data first (`loom ingest --source FILE`) "
            "or run `loom doctor`"
        )
    return root


def client():
    """The Metaflow Client module, in the global namespace (every user's runs are visible)."""
    from metaflow import namespace

    namespace(None)
    import metaflow

    return metaflow


MIN_PREFIX = 4  # shorter run-id prefixes are never taken (ids are timestamps: '1' would match them all)


def _run_ids(flow_name: str) -> list[str]:
    """Run ids of ``flow_name`` in the local datastore, newest first (a directory listing: no Client)."""
    fdir = os.path.join(datastore_root(), ".metaflow", flow_name)
    try:
        names = [n for n in os.listdir(fdir) if n not in ("data", "latest_run") and not n.startswith("_")
                 and os.path.isdir(os.path.join(fdir, n))]
    except OSError:
        return []
    return sorted(names, key=lambda n: (len(n), n), reverse=True)


def _flow_names() -> list[str]:
    root = os.path.join(datastore_root(), ".metaflow")
    try:
        return sorted(n for n in os.listdir(root) if n != "mf.cards" and not n.startswith(("_", "."))
                      and os.path.isdir(os.path.join(root, n)))
    except OSError:
        return []


def _successful(pathspec: str) -> bool:
    try:
        return bool(client().Run(pathspec).successful)
    except Exception:
        return False


def _ambiguous(ref: str, candidates: list[str], what: str) -> UsageError:
    shown = ", ".join(candidates[:8]) + (f" … ({len(candidates)} in all)" if len(candidates) > 8 else "")
    return UsageError(f"'{ref}' matches more than one {what}: {shown}; pass a longer prefix or the full pathspec")


def labelled(label: str, flows: tuple[str, ...] = DATASET_FLOWS) -> list[str]:
    """Successful data objects whose label is ``label``, newest first."""
    if not datastore_root() or not os.path.isdir(os.path.join(datastore_root(), ".metaflow")):
        return []
    mf = client()
    found: list[tuple[str, str]] = []
    for flow_name in flows:
        for rid in _run_ids(flow_name):
            try:
                run = mf.Run(f"{flow_name}/{rid}")
                if not run.successful:
                    continue
                d = run.data
                if "label" in d and str(d.label) == label:
                    found.append((run.created_at.isoformat() if run.created_at else "", run.pathspec))
            except Exception:
                continue
    return [p for _, p in sorted(found, reverse=True)]


def resolve_ref(ref: str, flows: tuple[str, ...] | None = None, *, what: str = "run") -> str:
    """The one place a reference to a run becomes a pathspec ``Flow/RunId``.

    Accepted: a full pathspec; ``Flow/latest`` (the latest successful run of that flow); ``Flow/PREFIX`` or a
    bare ``PREFIX`` of a run id (unique among ``flows``, or among every flow); a data object's label (from
    ``ingest --name`` or the file stem; the newest data object with it). Ambiguity is a UsageError that
    lists the candidates (exit 2)."""
    if not isinstance(ref, str) or not ref.strip():
        raise UsageError(f"needs a {what}: a pathspec (Flow/RunId), Flow/latest, a run-id prefix or a data object's label")
    ref = ref.strip()
    if "/" in ref:
        if not PATHSPEC_RE.match(ref):
            raise UsageError(f"'{ref}' is not a run pathspec (expected Flow/RunId, Flow/latest or a label, e.g. IngestDataset/123)")
        flow_name, rid = ref.split("/")
        if datastore_root() and flow_name not in _flow_names():  # EDAFlow/latest means EdaFlow/latest
            same = [n for n in _flow_names() if n.lower() == flow_name.lower()]
            flow_name = same[0] if len(same) == 1 else flow_name
        if flows and flow_name not in flows:
            if datastore_root() and flow_name not in _flow_names():
                hint = "`loom datasets` lists data objects" if what == "data object" else "check the pathspec"
                raise UsageError(f"{ref} does not exist in this workspace's datastore (no {flow_name} runs): {hint}")
            if what == "data object":
                raise UsageError(f"{ref} is not a data object (a {flow_name} run): pass its label, or a run of "
                                 f"{' or '.join(flows)} (`loom datasets` lists them)")
            raise UsageError(f"{ref} is a {flow_name} run, but this needs a {what} from {' or '.join(flows)}")
        require_datastore()
        ids = _run_ids(flow_name)
        if rid == "latest":
            for r in ids:
                if _successful(f"{flow_name}/{r}"):
                    return f"{flow_name}/{r}"
            raise UsageError(f"{flow_name} has no successful run in this workspace")
        if rid in ids or not ids:
            return ref
        matches = [r for r in ids if r.startswith(rid)] if len(rid) >= MIN_PREFIX else []
        if len(matches) == 1:
            return f"{flow_name}/{matches[0]}"
        if len(matches) > 1:
            raise _ambiguous(ref, [f"{flow_name}/{m}" for m in matches], what)
        return ref  # resolve_run says it does not exist
    require_datastore()
    if flows is None or set(flows) & set(DATASET_FLOWS):
        labelled_ = [p for p in labelled(ref) if not flows or p.split("/")[0] in flows]
        if labelled_:
            return labelled_[0]
    if ref.isdigit() and len(ref) >= MIN_PREFIX:
        matches = [f"{fl}/{r}" for fl in (flows or tuple(_flow_names())) for r in _run_ids(fl) if r.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise _ambiguous(ref, matches, what)
    hint = "`loom datasets` lists data objects and their labels" if what == "data object" else "check the pathspec"
    raise UsageError(f"no {what} '{ref}' in this workspace (not a label, a Flow/RunId pathspec, Flow/latest or a "
                     f"run-id prefix of {MIN_PREFIX}+ digits): {hint}")


# parameters that name a run, wherever a verb takes one: (flows it may come from, what it is called)
REF_PARAMS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "dataset": (DATASET_FLOWS, "data object"),
    "from": (("EdaFlow",), "eda run"),
    "from_run": (("EdaFlow",), "eda run"),
    "resume": (None, "run to resume"),  # OptimizeFlow for `loom run`, PipelineFlow for `loom pipeline`: prepare checks
    "run": (None, "run"),
    "source_run": (None, "run"),
}
# parameters whose name means a run only in some flows (`--model` is a run for validate, an LLM for `loom run`)
FLOW_REF_PARAMS: dict[str, dict[str, tuple[tuple[str, ...] | None, str]]] = {
    "ValidateFlow": {"model": (("OptimizeFlow",), "solution run")},
}


def resolve_params(params: dict, flow_name: str | None = None) -> dict:
    """``params`` with every run reference (REF_PARAMS, and FLOW_REF_PARAMS of ``flow_name``) replaced by its
    resolved pathspec; the bridge calls this before a verb's prepare, so the flow, its parameters and the
    envelope's ``inputs`` see the same run."""
    out = dict(params)
    for key, (flows, what) in {**REF_PARAMS, **FLOW_REF_PARAMS.get(flow_name or "", {})}.items():
        val = out.get(key)
        if isinstance(val, str) and val:
            out[key] = resolve_ref(val, flows, what=what)
    return out


def resolve_run(pathspec: str, flows: tuple[str, ...] | None = None, *, what: str = "run", require_success: bool = True):
    """Return the Client ``Run`` for ``pathspec`` (or any reference resolve_ref takes) or raise a UsageError
    that says what to do."""
    pathspec = resolve_ref(pathspec, flows, what=what)
    flow_name, run_id = pathspec.split("/")
    if flows and flow_name not in flows:
        raise UsageError(
            f"{pathspec} is a {flow_name} run, but this needs a {what} from {' or '.join(flows)}"
        )
    require_datastore()
    mf = client()
    try:
        run = mf.Run(pathspec)
    except Exception:  # MetaflowNotFound and friends
        hint = "`loom datasets` lists data objects" if what == "data object" else "check the pathspec"
        raise UsageError(f"{pathspec} does not exist in this workspace's datastore: {hint}")
    if require_success and not run.successful:
        raise UsageError(f"{pathspec} did not finish successfully: use a successful run (or see `loom doctor`)")
    return run


def resolve_dataset(pathspec: str):
    run = resolve_run(pathspec, None, what="data object")
    try:
        if "data_parquet" not in run.data:
            raise KeyError
    except Exception:
        raise UsageError(f"{pathspec} is not a data object: pass an IngestDataset/N or FeaturesFlow/N pathspec")
    return run


def stored_sha256(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def changed_on_disk(pathspec: str, why: str) -> UsageError:
    return UsageError(f"data object {pathspec} changed on disk since it was made ({why}): do not trust it; "
                      f"re-create it from its source (`loom doctor` lists every damaged data object)")


def verified_bytes(run) -> bytes:
    """A data object's stored Parquet bytes, after checking them against the sha256 recorded when it was made
    (``stored_sha256``). Objects made before that artifact existed are checked against ``content_hash``, the
    hash of the table itself. A mismatch is exit 2: the bytes were changed after the object was made."""
    import pyarrow.parquet as pq

    d = run.data
    try:
        blob = d.data_parquet
    except Exception as e:
        raise changed_on_disk(run.pathspec, f"its stored bytes cannot be read: {type(e).__name__}")
    want = d.stored_sha256 if "stored_sha256" in d else None
    if want is not None:
        if stored_sha256(blob) != want:
            raise changed_on_disk(run.pathspec, "sha256 of the stored bytes differs from the one recorded")
        return blob
    recorded = d.content_hash if "content_hash" in d else None
    if recorded:
        try:
            table = pq.ParquetFile(io.BytesIO(blob)).read(use_pandas_metadata=False)
        except Exception as e:
            raise changed_on_disk(run.pathspec, f"its stored bytes are not readable Parquet: {type(e).__name__}")
        if content_hash(table) != recorded:
            raise changed_on_disk(run.pathspec, "the table's content hash differs from the one recorded")
    return blob


def load_table(pathspec: str):
    """(pyarrow.Table, info dict) for a data object, its stored bytes checked against their recorded sha256."""
    import pyarrow.parquet as pq

    run = resolve_dataset(pathspec)
    blob = verified_bytes(run)
    try:
        # ParquetFile.read, not read_table: the same table without importing pyarrow.dataset (~30 ms)
        table = pq.ParquetFile(io.BytesIO(blob)).read(use_pandas_metadata=False)
        info = dataset_info(run)
    except Exception as e:
        raise UsageError(f"could not read {pathspec} from the datastore ({type(e).__name__}): it looks damaged; run `loom doctor`")
    return table, info


def load_frame(pathspec: str):
    """(pandas.DataFrame, info dict) for a data object."""
    table, info = load_table(pathspec)
    return table.to_pandas(), info


def dataset_info(run) -> dict:
    d = run.data
    get = lambda k, default=None: getattr(d, k) if k in d else default  # noqa: E731
    return {
        "pathspec": run.pathspec,
        "label": get("label", ""),
        "rows": get("rows"),
        "columns": get("n_columns"),
        "schema": get("schema", []),
        "content_hash": get("content_hash"),
        "source": get("source", {}),
        "lineage": get("lineage", {}),
        "carried_columns": list(get("carried_columns", []) or []),  # features --sensitive: for slicing, not inputs
        "created": run.created_at.isoformat() if run.created_at else None,
    }


# ---- building a data object -------------------------------------------------------------------

def schema_of(table) -> list[dict]:
    return [{"name": f.name, "type": str(f.type), "nullable": bool(f.nullable)} for f in table.schema]


def content_hash(table) -> str:
    """sha256 over the table's Arrow IPC stream: the same rows, columns and types give the same hash."""
    import pyarrow as pa

    h = hashlib.sha256()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        for batch in table.combine_chunks().to_batches(max_chunksize=1 << 16):
            w.write_batch(batch)
    h.update(sink.getvalue().to_pybytes())
    return "sha256:" + h.hexdigest()


def to_parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def from_frame(df):
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False)


def dataset_artifacts(table, *, label: str, source: dict, lineage: dict, parquet: bytes | None = None) -> dict:
    """The artifacts a flow sets (``for k, v in ...items(): setattr(self, k, v)``) to make a data object."""
    blob = parquet if parquet is not None else to_parquet_bytes(table)
    return {
        "data_parquet": blob,
        "stored_sha256": stored_sha256(blob),  # re-checked on every load (verified_bytes)
        "schema": schema_of(table),
        "rows": table.num_rows,
        "n_columns": table.num_columns,
        "content_hash": content_hash(table),
        "label": label,
        "source": source,
        "lineage": lineage,
    }


# ---- a data object's schema, read light (prepare runs in the launcher: no pandas) ----

def _schema_names(info: dict) -> list[str]:
    return [f["name"] for f in info.get("schema") or []]


def check_columns(info: dict, pathspec: str, **cols) -> None:
    names = _schema_names(info)
    for flag, col in cols.items():
        if col and col not in names:
            shown = ", ".join(names[:25]) + (" …" if len(names) > 25 else "")
            raise UsageError(f"--{flag} '{col}' is not a column of {pathspec}{did_you_mean(col, names)}: columns are {shown}")


def read_column(run, column: str):
    """One column of a data object as a pyarrow ChunkedArray (Parquet column projection; no pandas)."""
    import io

    import pyarrow.parquet as pq

    # ParquetFile.read without pandas metadata: read_table would import pandas (~0.5 s) in the launcher
    return pq.ParquetFile(io.BytesIO(verified_bytes(run))).read(columns=[column], use_pandas_metadata=False).column(0)


def light_info(run) -> dict:
    """The two artifacts prepare needs (schema, rows) without loading the rest."""
    d = run.data
    return {"schema": d.schema if "schema" in d else [], "rows": d.rows if "rows" in d else None}


# ---- integrity of the whole datastore (loom doctor) ---------------------------------------------

DATA_FLOWS = ("IngestDataset", "FeaturesFlow")


def verify_all(params: dict | None = None) -> dict:
    """Every successful data object's stored bytes against their recorded hash, and the staging directories
    a killed run left under the workspace's tmp/ (for `loom doctor`). Read-only."""
    import time

    mf = client()
    checked, damaged = 0, []
    for flow in DATA_FLOWS:
        try:
            runs = list(mf.Flow(flow))
        except Exception:
            continue
        for run in runs:
            try:
                if not run.successful or "data_parquet" not in run.data:
                    continue
            except Exception:
                continue
            checked += 1
            try:
                verified_bytes(run)
            except UsageError as e:
                damaged.append({"pathspec": run.pathspec, "why": str(e)})
    import tempfile

    tmp = os.environ.get("LOOM_TMP") or ""
    leftovers = []
    now = time.time()
    # sandbox roots (verbs/optimize/sandbox.py makes loom-sbx-* in the host's temp directory): one a killed
    # search left behind stops changing; a live one changes with every candidate it starts
    host = tempfile.gettempdir()
    for name in sorted(os.listdir(host)) if os.path.isdir(host) else []:
        p = os.path.join(host, name)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if name.startswith("loom-sbx-") and os.path.isdir(p) and st.st_uid == os.getuid() and now - st.st_mtime > 3600:
            size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _d, fs in os.walk(p) for f in fs
                       if os.path.isfile(os.path.join(dp, f)) and not os.path.islink(os.path.join(dp, f)))
            leftovers.append({"path": p, "bytes": size})
    if tmp and os.path.isdir(tmp):
        for name in sorted(os.listdir(tmp)):
            p = os.path.join(tmp, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if now - st.st_mtime > 300:  # older than any live run's staging
                size = st.st_size
                if os.path.isdir(p):
                    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _d, fs in os.walk(p) for f in fs
                               if os.path.isfile(os.path.join(dp, f)))
                leftovers.append({"path": p, "bytes": size})
    return {"status": "OK", "summary": {"checked": checked, "damaged": damaged, "leftovers": leftovers}}

# ---- the configured datastore, probed (loom doctor) ---------------------------------------------

def probe_datastore(params: dict | None = None) -> dict:
    """Checks of the remote datastore and the metadata provider Metaflow is pointed at, each
    ``{"name", "status", "detail", "fix"}``: the endpoint answers, the credentials are accepted, the bucket
    exists and can be listed, and the metadata service answers. Read-only: nothing is written."""
    checks: list[dict] = []

    def add(name, status, detail, fix=None):
        checks.append({"name": name, "status": status, "detail": detail, "fix": fix})

    if datastore_type() == "s3":
        root = datastore_root()
        try:  # Metaflow's own reading: the environment, else the active profile
            from metaflow.metaflow_config import S3_ENDPOINT_URL as endpoint
        except Exception:
            endpoint = os.environ.get("METAFLOW_S3_ENDPOINT_URL")
        endpoint = endpoint or None
        bucket, _, prefix = root[len("s3://"):].partition("/")
        where = f"{root}{f' at {endpoint}' if endpoint else ''}"
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ConnectTimeoutError
        except ImportError:
            add("datastore", "FAIL", "boto3 is not importable: the s3 datastore needs it", "run `loom setup --force`")
            return {"status": "OK", "summary": {"checks": checks}}
        s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}))
        try:
            s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            add("datastore", "PASS", f"s3 datastore {where}: reachable, credentials accepted, bucket listable")
        except NoCredentialsError:
            add("datastore", "FAIL", f"no AWS credentials for {where}",
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment or the Metaflow profile")
        except (EndpointConnectionError, ConnectTimeoutError) as e:
            add("datastore", "FAIL", f"cannot reach the S3 endpoint for {where} ({type(e).__name__})",
                "check METAFLOW_S3_ENDPOINT_URL and the network (is the object store up?)")
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket", "404"):
                add("datastore", "FAIL", f"bucket '{bucket}' does not exist ({where})",
                    f"create it (`aws s3 mb s3://{bucket}`) or fix METAFLOW_DATASTORE_SYSROOT_S3")
            elif code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                add("datastore", "FAIL", f"the credentials are refused for bucket '{bucket}' ({code})",
                    "use credentials that may list and write the bucket (AWS_ACCESS_KEY_ID / AWS_PROFILE)")
            else:
                add("datastore", "FAIL", f"S3 answered {code or type(e).__name__} for {where}", "check the bucket and the credentials")
        except Exception as e:  # anything else botocore raises: one line
            add("datastore", "FAIL", f"cannot use {where}: {type(e).__name__}: {str(e)[:160]}",
                "check METAFLOW_S3_ENDPOINT_URL, the credentials and the bucket")

    md = os.environ.get("METAFLOW_DEFAULT_METADATA") or "local"
    if md == "service":
        url = (os.environ.get("METAFLOW_SERVICE_URL") or "").rstrip("/")
        import urllib.request

        try:
            req = urllib.request.Request(url + "/ping")
            auth = os.environ.get("METAFLOW_SERVICE_AUTH_KEY")
            if auth:
                req.add_header("x-api-key", auth)
            with urllib.request.urlopen(req, timeout=5) as r:
                ok = 200 <= r.status < 300
            add("metadata", "PASS" if ok else "FAIL", f"metadata service {url} answers", None if ok else "check METAFLOW_SERVICE_URL")
        except Exception as e:
            add("metadata", "FAIL", f"the metadata service {url} does not answer ({type(e).__name__})",
                "check METAFLOW_SERVICE_URL (and METAFLOW_SERVICE_AUTH_KEY), or use METAFLOW_DEFAULT_METADATA=local")
    else:
        add("metadata", "PASS", f"local metadata in {os.path.join(os.environ.get('METAFLOW_DATASTORE_SYSROOT_LOCAL', '.'), '.metaflow')}")
    return {"status": "OK", "summary": {"checks": checks}}


def remote_datastore_bytes() -> int | None:
    """Bytes under the s3 datastore's root (artifacts, code packages, cards), listed in this process with boto3
    (Metaflow's own S3 client starts a worker process per call); None on the local datastore or when the
    bucket cannot be listed (``loom doctor`` says why)."""
    if datastore_type() != "s3":
        return None
    try:
        import boto3
        from botocore.config import Config

        try:
            from metaflow.metaflow_config import S3_ENDPOINT_URL as endpoint
        except Exception:
            endpoint = os.environ.get("METAFLOW_S3_ENDPOINT_URL")
        bucket, _, prefix = datastore_root()[len("s3://"):].partition("/")
        s3 = boto3.client("s3", endpoint_url=endpoint or None, config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2}))
        total = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/" if prefix else ""):
            total += sum(int(o.get("Size") or 0) for o in page.get("Contents", []))
        return total
    except Exception:
        return None


# ---- what a heavy step asks of remote compute (@resources; ignored on this machine) ------------------

def size_basis(pathspec: str) -> dict:
    """{rows, columns, stored_bytes} of a data object as recorded when it was made (rows, n_columns) and the
    size of its stored Parquet artifact (a metadata read, not the bytes): what ``runtime.sizing`` sizes from."""
    run = resolve_dataset(pathspec)
    d = run.data
    out = {"rows": d.rows if "rows" in d else None, "columns": d.n_columns if "n_columns" in d else None, "stored_bytes": None}
    try:
        out["stored_bytes"] = int(run.end_task["data_parquet"].size)
    except Exception:
        pass
    return out


def task_resources(kind: str) -> dict:
    """``@resources(**task_resources("features"))``: the static cores and memory of a step kind
    (``runtime.sizing.DEFAULTS``), overridable per run with LOOM_RESOURCES_CPU / LOOM_RESOURCES_MEMORY_MB
    (read when the flow file is, in the launcher). Validate and optimize size theirs from the data instead
    (``runtime.sizing.size_for``, through the flow's ``loom_resources`` config). Metaflow ignores them on
    local compute."""
    from loom_py.runtime.sizing import size_for

    r = size_for(kind)
    return {"cpu": r["cpu"], "memory": r["memory"]}
