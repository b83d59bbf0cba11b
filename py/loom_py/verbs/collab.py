"""`loom collab`: a sanitized, shareable bundle of a run (its card, summary and lineage), and the gated send.

What goes in (``bundle.tar.gz`` under ``<workspace>/artifacts/collab/<run id>/``)::

    runs/<Flow>-<id>/summary.json   the run's result (status, verdict, summary, inputs, parameters), sanitized
    runs/<Flow>-<id>/card.md        the run's card as Markdown (its Markdown, tables and Vega-Lite specs)
    report/model_card.md            the model card, where the lineage has a ReportFlow run
    lineage/openlineage.jsonl       one OpenLineage RunEvent (COMPLETE / FAIL) per run, with content hashes
    manifest.json                   sha256 and size of every file above, what was removed, by kind

Sanitizing, in this order, on every string of every file before it is written:

1. raw rows: a table (in a card) or a list of records (in a summary) whose columns are mostly a data
   object's columns is row-level and dropped, as are known sample fields (ingest's ``sample``);
   raster images are dropped (no scanner can read them); a value that occurs in exactly one row of a
   data object on the path (a string of 6+ characters) is removed wherever it appears;
2. secrets Loom knows: values of the environment's secret-named variables (…KEY, …TOKEN, …SECRET,
   …PASSWORD, PGPASSWORD) and of every connection's ``password_env`` (``.loom/connections.json``), the
   password part of any ``scheme://user:password@host``, values of secret-named fields, and common
   token formats;
3. absolute paths: the workspace becomes ``<workspace>``, the home directory ``~``, any other absolute
   path ``<path>/basename``;
4. detect-secrets (every plugin, default settings) scans every staged file; what it finds is removed
   and counted, then it scans again together with Loom's own checks: a bundle with any finding left is
   not written (exit 1 naming the file and the kind, never the value).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid

from loom_py.runtime.data import client, require_datastore, resolve_run, sha256_file
from loom_py.runtime.errors import DomainError, UsageError

SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|apikey|credential|auth|private[_-]?key|access[_-]?key)", re.I)
SAMPLE_KEYS = {"sample", "samples", "head", "sample_rows", "rows_sample", "examples"}
URI_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^:/@\s\"'`]+):([^@\s\"'`/]+)@")
TOKEN_FORMATS = [  # formats that are secrets wherever they appear
    ("anthropic_key", re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")),
    ("openai_key", re.compile(r"sk-(proj-)?[A-Za-z0-9_\-]{20,}")),
    ("github_token", re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}")),
    ("aws_access_key", re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}")),
    ("slack_token", re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}")),
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)")),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
]
ABS_PATH = re.compile(r"(?<![\w.:/<>~])/(?:[A-Za-z0-9_.@+-]+/)+[A-Za-z0-9_.@+-]*")
MIN_SECRET_LEN = 6
RARE_MIN_LEN = 6
MAX_RARE_VALUES = 500_000


# ---- what Loom knows ---------------------------------------------------------------------------------

def known_secrets(ws_dir: str, env: dict | None = None) -> dict[str, str]:
    """secret value → kind: secret-named environment variables and every connection's password_env."""
    env = dict(os.environ if env is None else env)
    out: dict[str, str] = {}
    names = {"PGPASSWORD"}
    try:
        with open(os.path.join(ws_dir, "connections.json")) as f:
            for c in (json.load(f) or {}).values():
                if isinstance(c, dict) and c.get("password_env"):
                    names.add(str(c["password_env"]))
    except (OSError, ValueError):
        pass
    for k, v in env.items():
        if not isinstance(v, str) or len(v) < MIN_SECRET_LEN:
            continue
        if k in names:
            out[v] = "connection_password"
        elif SECRET_NAME.search(k) and not k.startswith(("LOOM_", "METAFLOW_")):
            out[v] = "environment_secret"
    return out


def rare_values(tables: list) -> set[str]:
    """Strings that occur in exactly one row of a data object (6+ characters): they identify a row."""
    import pyarrow.compute as pc

    out: set[str] = set()
    for t in tables:
        for name in t.column_names:
            col = t.column(name)
            if not (str(col.type).startswith(("string", "large_string", "dictionary"))):
                continue
            try:
                vc = pc.value_counts(col.combine_chunks() if hasattr(col, "combine_chunks") else col)
            except Exception:
                continue
            vals, counts = vc.field("values").to_pylist(), vc.field("counts").to_pylist()
            for v, n in zip(vals, counts):
                if n == 1 and isinstance(v, str) and len(v.strip()) >= RARE_MIN_LEN:
                    out.add(v)
                    if len(out) >= MAX_RARE_VALUES:
                        return out
    return out


class Sanitizer:
    """Removes raw rows, secrets and absolute paths from strings and JSON, counting by kind."""

    def __init__(self, *, ws_root: str, home: str | None, secrets: dict[str, str], columns: list[set[str]],
                 rare: set[str]):
        self.ws_root = os.path.realpath(ws_root) if ws_root else ""
        self.ws_raw = ws_root
        self.home = home
        self.secrets = sorted(secrets.items(), key=lambda kv: -len(kv[0]))
        self.columns = [c for c in columns if len(c) >= 2]
        self.rare = rare
        self.removed: dict[str, int] = {}
        self.known_hashes: set[str] = set()  # digests Loom computed: not secrets, though high in entropy

    def hash_value(self, v) -> None:
        if isinstance(v, str) and re.fullmatch(r"(sha256:)?[0-9a-fA-F]{8,128}", v):
            self.known_hashes.add(v.split(":", 1)[-1].lower())

    def allowed(self, finding: dict) -> bool:
        """A high-entropy finding that is one of Loom's own digests (content hashes, the manifest's sha256s)."""
        v = str(finding.get("value") or "").lower()
        return "High Entropy" in finding["kind"] and any(v and v in h for h in self.known_hashes)

    def count(self, kind: str, n: int = 1) -> None:
        if n:
            self.removed[kind] = self.removed.get(kind, 0) + n

    # -- strings
    def text(self, s: str) -> str:
        if not isinstance(s, str) or not s:
            return s
        for val, kind in self.secrets:
            if val in s:
                self.count(kind, s.count(val))
                s = s.replace(val, f"[removed: {kind}]")
        s, n = URI_PASSWORD.subn(lambda m: f"{m.group(1)}{m.group(2)}:[removed]@", s)
        self.count("uri_password", n)
        for kind, rx in TOKEN_FORMATS:
            s, n = rx.subn(f"[removed: {kind}]", s)
            self.count(kind, n)
        if self.rare:
            if s in self.rare:
                self.count("raw_value")
                return "[removed: row value]"
            s = self._rare_tokens(s)
        s = self._paths(s)
        return s

    def _rare_tokens(self, s: str) -> str:
        def sub(m):
            tok = m.group(0)
            if tok in self.rare:
                self.count("raw_value")
                return "[removed: row value]"
            return tok
        return re.sub(r"[^\s|`'\",;()\[\]{}<>=]{%d,}" % RARE_MIN_LEN, sub, s)

    def _paths(self, s: str) -> str:
        for root in {self.ws_root, self.ws_raw} - {""}:
            for base in (os.path.join(root, ".loom"), root):
                if base and base in s:
                    self.count("absolute_path", s.count(base))
                    s = s.replace(base, "<workspace>")
        if self.home and len(self.home) > 1 and self.home in s:
            self.count("absolute_path", s.count(self.home))
            s = s.replace(self.home, "~")

        def sub(m):
            p = m.group(0)
            if p.startswith(("/loom", "/workspace")) or p.count("/") < 2:
                return p
            self.count("absolute_path")
            return "<path>/" + (p.rstrip("/").rsplit("/", 1)[-1] or "")
        return ABS_PATH.sub(sub, s)

    # -- structures
    def is_row_level(self, keys) -> bool:
        keys = {str(k) for k in keys}
        if len(keys) < 2:
            return False
        return any(len(keys & cols) >= max(2, (len(keys) + 1) // 2) for cols in self.columns)

    def json(self, x, key: str | None = None):
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                ks = str(k)
                if ks.lower() in SAMPLE_KEYS and isinstance(v, list) and v:
                    self.count("raw_rows", len(v))
                    continue
                if SECRET_NAME.search(ks) and isinstance(v, str) and v and not ks.lower().endswith(("_env", "_hash")):
                    self.count("secret_field")
                    out[self.text(ks)] = "[removed: secret_field]"
                    continue
                if "hash" in ks.lower() or "sha256" in ks.lower():
                    self.hash_value(v)
                out[self.text(ks)] = self.json(v, ks)
            return out
        if isinstance(x, list):
            if x and all(isinstance(r, dict) for r in x) and self.is_row_level(set().union(*[r.keys() for r in x])):
                self.count("raw_rows", len(x))
                return []
            return [self.json(v) for v in x]
        if isinstance(x, str):
            return self.text(x)
        return x


# ---- cards ---------------------------------------------------------------------------------------------

def card_components(run) -> list[dict]:
    """The components of a run's cards (decoded from each card's embedded data)."""
    from metaflow.cards import get_cards

    comps = []
    for step in run:
        for task in step:
            try:
                cards = list(get_cards(task))
            except Exception:
                continue
            for c in cards:
                try:
                    html = c.get()
                except Exception:
                    continue
                for m in re.finditer(r'__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"', html or ""):
                    try:
                        data = json.loads(base64.b64decode(m.group(1)))
                    except Exception:
                        continue
                    comps.extend(data.get("components") or [])
    return comps


def _cell(v) -> str:
    if isinstance(v, dict):
        return str(v.get("text") or v.get("source") or v.get("data") or "")
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def card_markdown(components: list[dict], san: Sanitizer) -> str:
    """A card's components as Markdown, sanitized: row-level tables and images are dropped."""
    out: list[str] = []

    def walk(c):
        if isinstance(c, list):
            for x in c:
                walk(x)
            return
        if not isinstance(c, dict):
            return
        t = c.get("type")
        if t in ("page", "section"):
            if c.get("title"):
                out.append(f"## {san.text(str(c['title']))}\n")
            walk(c.get("contents") or [])
        elif t == "markdown":
            out.append(san.text(str(c.get("source") or "")) + "\n")
        elif t == "table":
            cols = [str(h) for h in (c.get("columns") or c.get("headers") or [])]
            rows = c.get("data") or []
            if san.is_row_level(cols):
                san.count("raw_rows", len(rows))
                out.append(f"_(a table of {len(rows)} data rows was removed: row-level data)_\n")
                return
            if not cols and rows:
                cols = [f"c{i}" for i in range(len(rows[0]))]
            esc = lambda s: san.text(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            out.append("| " + " | ".join(esc(h) for h in cols) + " |")
            out.append("|" + "---|" * len(cols))
            for r in rows:
                out.append("| " + " | ".join(esc(_cell(v)) for v in (r if isinstance(r, list) else [r])) + " |")
            out.append("")
        elif t == "vegaChart":
            spec = san.json(c.get("spec") or {})
            out.append("```vega-lite\n" + json.dumps(spec, indent=None, default=str) + "\n```\n")
        elif t == "image":
            san.count("image")
            out.append("_(an image was removed: raster images cannot be scanned for rows or secrets)_\n")
        elif t in ("artifacts",):
            san.count("artifact_listing")
        elif c.get("contents"):
            walk(c["contents"])
    walk(components)
    return "\n".join(out)


# ---- OpenLineage ----------------------------------------------------------------------------------------

PRODUCER = "https://github.com/loom-ds/loom/collab"
OL_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"


def _dataset(name: str, content_hash: str | None) -> dict:
    d = {"namespace": "loom", "name": name}
    if content_hash:
        d["facets"] = {"loom_contentHash": {"_producer": PRODUCER,
                                            "_schemaURL": "https://openlineage.io/spec/facets/1-0-0/DatasetFacet.json",
                                            "sha256": content_hash.replace("sha256:", "")}}
    return d


def lineage_events(nodes: list[dict], hashes: dict[str, str]) -> list[dict]:
    """One OpenLineage RunEvent per run: job = the flow, run = a UUID from the pathspec, inputs = the runs
    it read, output = the run itself, each with its content hash (the data object's, else the sha256
    of the run's summary in this bundle)."""
    ev = []
    for n in nodes:
        p = n["pathspec"]
        ok = n.get("successful", n.get("status") not in ("FAILED", "MISSING"))
        ev.append({"eventType": "COMPLETE" if ok else "FAIL", "eventTime": n.get("finished") or n.get("created"),
                   "producer": PRODUCER, "schemaURL": OL_SCHEMA,
                   "run": {"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, "loom:" + p)),
                           "facets": {"loom": {"_producer": PRODUCER, "_schemaURL": OL_SCHEMA, "pathspec": p,
                                               "status": n.get("status"), "verdict": n.get("verdict")}}},
                   "job": {"namespace": "loom", "name": n["flow"]},
                   "inputs": [_dataset(q, hashes.get(q)) for q in n.get("inputs") or []],
                   "outputs": [_dataset(p, hashes.get(p))]})
    return ev


# ---- the scan ---------------------------------------------------------------------------------------------

def detect_secrets_scan(paths: list[str]) -> list[dict]:
    """Every detect-secrets finding in ``paths``: file, line, kind and the value (never reported out)."""
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    found = []
    with default_settings():
        for p in paths:
            sc = SecretsCollection()
            sc.scan_file(p)
            for _f, s in sc:
                found.append({"file": p, "line": s.line_number, "kind": s.type, "value": s.secret_value})
    return found


def _redact_finding(path: str, line_no: int, value: str | None, kind: str) -> bool:
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = line_no - 1
    if not (0 <= i < len(lines)):
        return False
    line = lines[i]
    tag = f"[removed: {kind}]"
    if value and value in line:
        # the whole token that holds the value (detect-secrets may report only its prefix)
        line = re.sub(r"[^\s|`'\",;()\[\]{}<>]*" + re.escape(value) + r"[^\s|`'\",;()\[\]{}<>]*", tag, line)
    else:
        line = tag
    lines[i] = line
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return True


def final_check(paths: list[str], san: Sanitizer, stage: str, scan: list[str] | None = None) -> list[dict]:
    """What is still wrong: detect-secrets findings, Loom's known secrets, machine paths, row values.

    ``scan``: the files detect-secrets has not yet seen in their final bytes (default: all); a file the
    first pass scanned clean and nothing rewrote would give the same answer again."""
    problems = [{"file": os.path.relpath(f["file"], stage), "kind": f["kind"]}
                for f in detect_secrets_scan(paths if scan is None else scan) if not san.allowed(f)]
    home = san.home if san.home and len(san.home) > 1 else None
    for p in paths:
        with open(p, encoding="utf-8") as fh:
            s = fh.read()
        rel = os.path.relpath(p, stage)
        for val, kind in san.secrets:
            if val in s:
                problems.append({"file": rel, "kind": kind})
        if URI_PASSWORD.search(s.replace(":[removed]@", "@")):
            problems.append({"file": rel, "kind": "uri_password"})
        for root in {san.ws_root, san.ws_raw, home} - {None, ""}:
            if root in s:
                problems.append({"file": rel, "kind": "absolute_path"})
        if san.rare and any(tok in san.rare for tok in re.findall(r"[^\s|`'\",;()\[\]{}<>=]{%d,}" % RARE_MIN_LEN, s)):
            problems.append({"file": rel, "kind": "raw_value"})
    return problems


# ---- building a bundle -----------------------------------------------------------------------------------

def _safe_name(p: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", p.replace("/", "-"))


def collect(root: str, include_lineage: bool) -> list[dict]:
    from loom_py.verbs import report

    nodes = report.walk([root]) if include_lineage else {root: report.read_node(root)}
    return [n for n in report.order({k: v for k, v in nodes.items() if v})]


def build_bundle(root: str, include_lineage: bool, out_dir: str, *, ws_dir: str, env: dict | None = None) -> dict:
    """Stage, sanitize, scan and pack the bundle; returns the facts for the summary. Raises DomainError
    (exit 1) naming the file and the kind when the final scan still finds something."""
    from loom_py.runtime.data import load_table

    t0 = time.perf_counter()
    mf = client()
    nodes = collect(root, include_lineage)
    tables, columns, hashes = [], [], {}
    for n in nodes:
        if n.get("dataset"):
            try:
                t, info = load_table(n["pathspec"])
            except Exception:
                continue
            tables.append(t)
            columns.append(set(t.column_names))
            hashes[n["pathspec"]] = info.get("content_hash")
    ws_root = os.path.dirname(os.path.realpath(ws_dir)) if os.path.basename(ws_dir.rstrip("/")) == ".loom" else ws_dir
    san = Sanitizer(ws_root=ws_root, home=os.path.expanduser("~"), secrets=known_secrets(ws_dir, env),
                    columns=columns, rare=rare_values(tables))
    stage = tempfile.mkdtemp(prefix="loom-collab-", dir=os.path.join(ws_dir, "tmp") if os.path.isdir(os.path.join(ws_dir, "tmp")) else None)
    try:
        files: list[str] = []

        def write(rel: str, text: str) -> str:
            p = os.path.join(stage, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
            files.append(p)
            return p

        runs_out = []
        for n in nodes:
            p = n["pathspec"]
            d = f"runs/{_safe_name(p)}"
            rec = {"pathspec": p, "flow": n["flow"], "created": n.get("created"), "status": n.get("status"),
                   "verdict": n.get("verdict"), "inputs": n.get("inputs") or [], "parameters": n.get("params") or {},
                   "messages": n.get("messages") or [], "summary": n.get("summary") or {},
                   "dataset": n.get("dataset")}
            sp = write(f"{d}/summary.json", json.dumps(san.json(rec), indent=1, default=str, sort_keys=True))
            hashes.setdefault(p, "sha256:" + sha256_file(sp))
            san.hash_value(hashes[p])
            try:
                comps = card_components(mf.Run(p))
            except Exception:
                comps = []
            if comps:
                write(f"{d}/card.md", card_markdown(comps, san))
            if n["flow"] == "ReportFlow":
                try:
                    md = mf.Run(p).data.model_card_md
                    write(f"report/{_safe_name(p)}-model_card.md", san.text(md))
                except Exception:
                    pass
            runs_out.append(p)
        events = lineage_events(nodes, hashes)
        write("lineage/openlineage.jsonl", "\n".join(json.dumps(san.json(e), sort_keys=True) for e in events) + "\n")

        # detect-secrets, pass 1: remove what it finds (counted by its kind)
        rewritten = set()
        for f in detect_secrets_scan(files):
            if not san.allowed(f) and _redact_finding(f["file"], f["line"], f["value"], f["kind"]):
                san.count("detect-secrets: " + f["kind"])
                rewritten.add(f["file"])
        removed = dict(sorted(san.removed.items()))
        for p in files:
            san.hash_value(sha256_file(p))
        for h in hashes.values():
            san.hash_value(h)
        manifest = {"bundle_of": root, "include_lineage": include_lineage, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "runs": runs_out, "removed": removed,
                    "files": [{"path": os.path.relpath(p, stage), "sha256": sha256_file(p), "bytes": os.path.getsize(p)}
                              for p in sorted(files)]}
        write("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        # pass 2, with Loom's own checks: anything left and the bundle is not written
        problems = final_check(files, san, stage, scan=sorted(rewritten) + [files[-1]])  # + the manifest
        if problems:
            first = problems[0]
            kinds = sorted({f"{p['file']} ({p['kind']})" for p in problems})
            raise DomainError(f"the bundle still fails the scan: {first['kind']} in {first['file']}"
                              + (f" and {len(kinds) - 1} more" if len(kinds) > 1 else "") + "; nothing was written",
                              status="FAIL", summary={"problems": [{"file": p["file"], "kind": p["kind"]} for p in problems[:50]]})
        os.makedirs(out_dir, exist_ok=True)
        bundle = os.path.join(out_dir, "bundle.tar.gz")
        tmp = bundle + ".part"
        with tarfile.open(tmp, "w:gz") as tar:
            for p in sorted(files):
                info = tar.gettarinfo(p, arcname=os.path.relpath(p, stage))
                info.uid = info.gid = 0
                info.uname = info.gname = "loom"
                info.mtime = 0
                with open(p, "rb") as fh:
                    tar.addfile(info, fh)
        os.replace(tmp, bundle)
        digest = sha256_file(bundle)
        return {"bundle": bundle, "sha256": digest, "bytes": os.path.getsize(bundle), "runs": runs_out,
                "files": manifest["files"], "removed": removed, "secrets_found_after_sanitizing": 0,
                "raw_rows_included": 0, "seconds": round(time.perf_counter() - t0, 3)}
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# ---- the send ----------------------------------------------------------------------------------------------

def _display_dest(dest: str) -> str:
    """Where it went, without credentials (a presigned URL's query string is one)."""
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(dest)
    netloc = u.hostname or ""
    if u.port:
        netloc += f":{u.port}"
    return urlunsplit((u.scheme, netloc, u.path, "", ""))


def check_dest(dest: str) -> None:
    from urllib.parse import urlsplit

    u = urlsplit(dest or "")
    if u.scheme == "s3":
        if not u.netloc:
            raise UsageError("--send s3://BUCKET/PREFIX needs a bucket")
        return
    if u.scheme == "https" and u.hostname:
        return
    if u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost", "::1"):
        return  # a loopback server (tests, a local proxy)
    raise UsageError(f"--send takes s3://BUCKET/PREFIX or an https:// URL (e.g. a presigned PUT URL), not '{_display_dest(dest) or dest}'")


def send_file(path: str, sha256: str, dest: str) -> dict:
    """Upload the bundle exactly as built: the hash is re-checked first; s3:// through boto3 (the usual
    AWS variables; AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL for S3-compatible stores), https:// as a PUT."""
    from urllib.parse import urlsplit

    if not os.path.exists(path) or sha256_file(path) != sha256:
        raise DomainError("the bundle on disk is not the one built (its sha256 differs or it is gone): build it again; nothing was sent")
    u = urlsplit(dest)
    name = os.path.basename(os.path.dirname(path)) + "-" + os.path.basename(path)
    with open(path, "rb") as f:
        body = f.read()
    if u.scheme == "s3":
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        key = "/".join(x for x in (u.path.strip("/"), f"loom-collab-{name}") if x)
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        try:
            from botocore.config import Config

            # checksums only where required: S3-compatible stores differ in support for the newer
            # streaming (aws-chunked) checksums; the bundle's sha256 travels as metadata, checked above
            s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(request_checksum_calculation="when_required",
                                                                         response_checksum_validation="when_required"))
            resp = s3.put_object(Bucket=u.netloc, Key=key, Body=body, ContentType="application/gzip",
                                 Metadata={"sha256": sha256})
        except (BotoCoreError, ClientError) as e:
            raise DomainError(f"the send to s3://{u.netloc}/{key} failed: {type(e).__name__}: {str(e)[:200]}")
        return {"dest": f"s3://{u.netloc}/{key}", "endpoint": _display_dest(endpoint) if endpoint else None,
                "etag": str(resp.get("ETag", "")).strip('"'), "sha256": sha256, "bytes": len(body)}
    import urllib.error
    import urllib.request

    req = urllib.request.Request(dest, data=body, method="PUT",
                                 headers={"Content-Type": "application/gzip", "x-loom-sha256": sha256})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        raise DomainError(f"the send to {_display_dest(dest)} failed: HTTP {e.code}")
    except (urllib.error.URLError, OSError) as e:
        raise DomainError(f"the send to {_display_dest(dest)} failed: {type(e).__name__}: {str(e)[:200]}")
    return {"dest": _display_dest(dest), "http_status": status, "sha256": sha256, "bytes": len(body)}


# ---- bridge hooks --------------------------------------------------------------------------------------------

def prepare(params: dict) -> dict:
    run = params.get("run") or ""
    if not run:
        raise UsageError("collab needs --run PATHSPEC (e.g. ReportFlow/12)")
    require_datastore()
    resolve_run(run, None, what="run", require_success=False)
    if run.startswith("CollabFlow/"):
        raise UsageError(f"{run} is already a bundle: send it with `loom collab --run {run} --send DEST`")
    if params.get("send"):
        check_dest(params["send"])
    return {"params": {"run": run, "include_lineage": bool(params.get("include_lineage"))}, "inputs": [run]}


def send(params: dict) -> dict:
    """Send a CollabFlow run's bundle (bridge call mode, after the gate allowed it)."""
    p, dest = params.get("run") or "", params.get("send") or ""
    check_dest(dest)
    run = resolve_run(p, ("CollabFlow",), what="bundle run")
    res = run.data.loom_result
    s = dict(res.get("summary") or {})
    # the bundle as this workspace's file: the run's task may have built it elsewhere (a remote container), or
    # it was removed here; a missing one comes back from the run's kept files (runtime/wsfiles.py, sha256-checked)
    from loom_py.runtime import wsfiles

    got = wsfiles.materialize(run, only_missing=True)
    s = wsfiles.remap(s, got["root"])
    path = s.get("bundle_path") or ""
    sent = send_file(path, s["sha256"], dest)
    sent["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record = os.path.join(os.path.dirname(path), "sent.json")
    prior = []
    try:
        with open(record) as f:
            prior = json.load(f)
    except (OSError, ValueError):
        pass
    with open(record, "w") as f:
        json.dump(prior + [sent], f, indent=1)
    try:
        run.add_tag("collab:sent")
    except Exception:
        pass
    s["sent"] = prior + [sent]
    return {"status": "SENT", "summary": s, "inputs": [p], "pathspec": p,
            "messages": [f"sent {s['sha256'][:12]}… ({sent['bytes']:,} bytes) to {sent['dest']}; recorded in {record}"]}
