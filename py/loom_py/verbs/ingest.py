"""The ingest boundary: read outside data (files, SQLite, PostgreSQL) into an Arrow table.

Everything here runs in the launcher *before* the IngestDataset flow starts, so bad input is refused
with one line (exit 2) and nothing is written. The source is opened read-only and never modified. The
table is handed to the flow as a staged Parquet file through Metaflow's IncludeFile, which copies it
into the datastore: the one place where a flow reads the launcher's disk.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import sqlite3
import tempfile
from urllib.parse import unquote, urlparse

from loom_py.runtime.errors import UsageError

TEXT_EXT = {".tsv": "\t", ".tab": "\t"}  # .csv files are sniffed: semicolon CSVs are common
SNIFF_BYTES = 1 << 16


# ---- pure helpers (table-tested) -----------------------------------------------------------------

def detect_encoding(sample: bytes) -> tuple[str, str | None]:
    """(encoding, note). UTF-8 (with or without BOM), UTF-16 by BOM, else cp1252 with a note."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", None
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "decoded from UTF-16 (byte-order mark)"
    try:
        sample.decode("utf-8")
        return "utf-8", None
    except UnicodeDecodeError as e:
        # a multi-byte character cut at the end of the sample is still UTF-8
        if e.start >= len(sample) - 4 and e.reason in ("unexpected end of data",):
            return "utf-8", None
        return "cp1252", "not valid UTF-8: decoded as Windows-1252 (Latin-1); pass --encoding to override"


def looks_binary(sample: bytes) -> bool:
    if not sample or sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if b"\x00" in sample:
        return True
    ctrl = sum(1 for b in sample[:4096] if b < 9 or 13 < b < 32)
    return ctrl > len(sample[:4096]) * 0.1


def sniff_delimiter(text: str, default: str = ",") -> str:
    """The candidate that splits every sampled line into the same number (>1) of fields; ties go to the
    most fields. csv.Sniffer only when no candidate is consistent (quoted fields with delimiters)."""
    lines = [l for l in text.splitlines()[:50] if l.strip()]
    if not lines:
        return default
    if len(lines) > 1 and len(text) >= SNIFF_BYTES:
        lines = lines[:-1]  # the last sampled line may be cut
    best, best_n = None, 1
    for d in (",", "\t", ";", "|"):
        counts = {l.count(d) for l in lines}
        if len(counts) == 1 and (n := counts.pop()) + 1 > best_n:
            best, best_n = d, n + 1
    if best:
        return best
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in ",;\t|"}
        best = max(counts, key=counts.get)
        return best if counts[best] > 0 else default


def dedupe_columns(names: list[str]) -> tuple[list[str], list[dict]]:
    """Blank names become column_N; repeats get _2, _3 … Returns (names, renames)."""
    out, renames, seen = [], [], set()
    for i, n in enumerate(names):
        base = n.strip() if isinstance(n, str) else str(n)
        new = base or f"column_{i + 1}"
        k = 2
        while new in seen:
            new = f"{base or 'column'}_{k}"
            k += 1
        seen.add(new)
        out.append(new)
        if new != n:
            renames.append({"position": i + 1, "from": n, "to": new})
    return out, renames


def parse_uri(uri: str) -> dict:
    """Classify a source: {'kind': 'file'|'dir'|'sqlite'|'postgresql', ...}."""
    if uri.startswith("sqlite:///") or uri.startswith("sqlite://"):
        path = unquote(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else unquote(uri[len("sqlite://"):])
        if uri.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        elif not os.path.isabs(path):
            path = os.path.abspath(path)
        return {"kind": "sqlite", "path": path}
    if uri.startswith(("postgresql://", "postgres://")):
        u = urlparse(uri)
        if u.password:
            raise UsageError("put no password in the URI: name an environment variable with --password-env (default PGPASSWORD)")
        return {"kind": "postgresql", "host": u.hostname or "localhost", "port": u.port or 5432,
                "user": unquote(u.username or ""), "dbname": (u.path or "/").lstrip("/"), "query": u.query}
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri):
        raise UsageError(f"unsupported source '{uri}': use a file path, sqlite:///path.db or postgresql://user@host:port/db")
    return {"kind": "dir" if os.path.isdir(uri) else "file", "path": os.path.abspath(uri)}


def file_format(path: str, override: str | None = None) -> str:
    if override:
        return override
    ext = os.path.splitext(path)[1].lower()
    if ext in (".parquet", ".pq"):
        return "parquet"
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "csv"


# ---- readers --------------------------------------------------------------------------------------

def read_csv(path: str, delimiter: str | None = None, encoding: str | None = None, on_bad_rows: str = "error"):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    notes: list[str] = []
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head.strip():
        raise UsageError(f"{path} is empty: nothing to ingest")
    if looks_binary(head):
        raise UsageError(f"{path} looks like a binary file, not delimited text: pass a CSV/TSV, Parquet or JSON-lines file")
    enc, note = (encoding, None) if encoding else detect_encoding(head)
    if note:
        notes.append(note)
    try:
        codecs.lookup(enc)
    except LookupError:
        raise UsageError(f"unknown encoding '{enc}': pass --encoding utf-8, latin-1, utf-16 …")
    if _odd_quotes(path):
        raise UsageError(f"{path}: unterminated quoted field (an odd number of double quotes): fix the quoting, or pass --delimiter/--encoding if they were misdetected")
    ext_delim = TEXT_EXT.get(os.path.splitext(path)[1].lower())
    try:
        sample_text = head.decode(enc, errors="replace")
    except Exception:
        sample_text = ""
    delim = delimiter or ext_delim or sniff_delimiter(sample_text)
    if delimiter is None and ext_delim is None and delim != ",":
        notes.append(f"delimiter detected as {delim!r}")
    if len(delim) != 1:
        raise UsageError(f"--delimiter must be one character, got {delim!r}")

    bad_rows = []

    def handler(row):
        bad_rows.append(row.number)
        return "skip"

    read_opts = pacsv.ReadOptions(encoding=enc if enc not in ("utf-8",) else "utf8", block_size=1 << 24)
    parse_opts = pacsv.ParseOptions(delimiter=delim, newlines_in_values=True,
                                    invalid_row_handler=handler if on_bad_rows == "skip" else None)
    conv = pacsv.ConvertOptions(strings_can_be_null=True)
    try:
        table = pacsv.read_csv(path, read_options=read_opts, parse_options=parse_opts, convert_options=conv)
    except pa.ArrowInvalid as e:
        msg = str(e).splitlines()[0]
        if "Expected" in msg and "columns" in msg:
            m = re.search(r"Expected (\d+) columns, got (\d+)", msg)
            where = f" ({m.group(0)})" if m else ""
            raise UsageError(f"{path} has rows with a different number of fields than the header{where}: "
                             "fix the file or pass --on-bad-rows skip to drop them")
        if "quote" in msg.lower() or "end of file" in msg.lower() or "Unexpected end" in msg:
            raise UsageError(f"{path}: unterminated quoted field ({msg}): fix the quoting or pass --delimiter/--encoding")
        raise UsageError(f"{path} could not be parsed as delimited text: {msg}")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not valid {enc}: pass --encoding (e.g. latin-1)") from e
    if bad_rows:
        notes.append(f"skipped {len(bad_rows)} ragged row(s) (--on-bad-rows skip), first at line {bad_rows[0]}")
    if table.num_rows == 0:
        raise UsageError(f"{path} has a header but no data rows: nothing to ingest")
    names, renames = dedupe_columns(table.column_names)
    if renames:
        table = table.rename_columns(names)
        notes.append("renamed columns: " + ", ".join(f"{r['from']!r}→{r['to']!r}" for r in renames))
    if enc not in ("utf-8", "utf-8-sig"):
        notes.append(f"encoding {enc}")
    return table, {"format": "csv", "delimiter": delim, "encoding": enc, "notes": notes}


def _odd_quotes(path: str) -> bool:
    """A well-formed CSV has an even number of `"` (escaped quotes are doubled)."""
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b'"')
    return n % 2 == 1


def read_parquet(path: str):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:
        raise UsageError(f"{path} is not a readable Parquet file: {str(e).splitlines()[0]}")
    if table.num_rows == 0:
        raise UsageError(f"{path} has no rows: nothing to ingest")
    return table, {"format": "parquet", "notes": []}


def read_jsonl(path: str):
    import pyarrow as pa
    import pyarrow.json as pajson

    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head.strip():
        raise UsageError(f"{path} is empty: nothing to ingest")
    if looks_binary(head):
        raise UsageError(f"{path} looks like a binary file, not JSON lines")
    try:
        table = pajson.read_json(path)
    except pa.ArrowInvalid as e:
        raise UsageError(f"{path} is not valid JSON lines (one object per line): {str(e).splitlines()[0]}")
    if table.num_rows == 0:
        raise UsageError(f"{path} has no rows: nothing to ingest")
    return table, {"format": "jsonl", "notes": []}


def special_file(path: str) -> str | None:
    """What a path that is not a regular file is (a FIFO, a device, a socket), from os.stat alone — it
    never opens the path, so a named pipe or /dev/zero cannot block or flood the reader. None for a
    regular file (or a directory, which the caller names itself)."""
    import stat

    st = os.stat(path)  # follows symlinks: a link to /dev/zero is judged as /dev/zero
    mode = st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    what = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
            "a character device" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    if os.path.islink(path):
        what += f" (a symlink to {os.path.realpath(path)})"
    return what


def single_line(path: str, limit: int = 1 << 24) -> int | None:
    """The file's size when its first ``limit`` bytes hold no line break (one line too long to be a
    header), else None."""
    size = os.path.getsize(path)
    if size <= SNIFF_BYTES:
        return None
    with open(path, "rb") as f:
        for _ in range(0, limit, SNIFF_BYTES):
            chunk = f.read(SNIFF_BYTES)
            if not chunk:
                break
            if b"\n" in chunk or b"\r" in chunk:
                return None
    return size


def _size_text(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def read_file(path: str, *, fmt: str | None = None, delimiter=None, encoding=None, on_bad_rows="error"):
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory: pass a file in it (or `loom connect NAME --uri DIR` then `--source @NAME --table FILE`)")
    if (what := special_file(path)):
        raise UsageError(f"{path} is {what}, not a file: save the data to a regular file and ingest that")
    if not os.access(path, os.R_OK):
        raise UsageError(f"cannot read {path}: permission denied")
    if os.path.getsize(path) == 0:
        raise UsageError(f"{path} is empty: nothing to ingest")
    kind = file_format(path, fmt)
    if kind != "parquet" and (n := single_line(path)):
        shape = "one JSON object per line" if kind == "jsonl" else "a header line, then one row per line"
        raise UsageError(f"{path} is a single line of {_size_text(n)} with no line breaks: not a table of rows "
                         f"({shape}); check the export (line endings, the format)")
    if kind == "parquet":
        return read_parquet(path)
    if kind == "jsonl":
        return read_jsonl(path)
    return read_csv(path, delimiter, encoding, on_bad_rows)


def _sql_for(table: str | None, query: str | None, quote: str = '"') -> str:
    if bool(table) == bool(query):
        raise UsageError("a database source needs exactly one of --table T or --query SQL")
    if table:
        parts = table.split(".")
        return "SELECT * FROM " + ".".join(quote + p.replace(quote, quote * 2) + quote for p in parts)
    return query


def read_sqlite(path: str, table=None, query=None):
    import pandas as pd
    import pyarrow as pa

    if not os.path.exists(path):
        raise UsageError(f"no such SQLite database: {path}")
    sql = _sql_for(table, query)
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise UsageError(f"cannot open SQLite database {path}: {e}")
    try:
        df = pd.read_sql_query(sql, con)
    except Exception as e:  # pandas wraps sqlite errors in DatabaseError
        msg = str(e).splitlines()[0]
        msg = msg.split(": ", 1)[-1] if msg.startswith("Execution failed") else msg
        raise UsageError(f"SQL error: {msg}")
    finally:
        con.close()
    if df.empty:
        raise UsageError("the query returned no rows: nothing to ingest")
    names, renames = dedupe_columns([str(c) for c in df.columns])
    df.columns = names
    notes = ["renamed columns: " + ", ".join(f"{r['from']!r}→{r['to']!r}" for r in renames)] if renames else []
    return pa.Table.from_pandas(df, preserve_index=False), {"format": "sqlite", "notes": notes}


def read_postgres(info: dict, password_env: str = "PGPASSWORD", table=None, query=None):
    import pandas as pd
    import pyarrow as pa

    try:
        import psycopg
    except ImportError:
        raise UsageError("PostgreSQL needs psycopg in Loom's environment: run `loom setup`")
    sql = _sql_for(table, query)
    kw = dict(host=info["host"], port=info["port"], dbname=info["dbname"], connect_timeout=10)
    if info.get("user"):
        kw["user"] = info["user"]
    if os.environ.get(password_env):
        kw["password"] = os.environ[password_env]
    try:
        with psycopg.connect(**kw) as con:
            con.read_only = True
            with con.cursor() as cur:
                cur.execute(sql)
                cols = [d.name for d in cur.description or []]
                rows = cur.fetchall()
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "connection failed"
        raise UsageError(f"cannot connect to PostgreSQL at {info['host']}:{info['port']}/{info['dbname']}: {first} "
                         f"(password comes from ${password_env})")
    except psycopg.Error as e:
        raise UsageError(f"SQL error: {str(e).strip().splitlines()[0]}")
    if not rows:
        raise UsageError("the query returned no rows: nothing to ingest")
    names, _ = dedupe_columns(cols)
    df = pd.DataFrame.from_records(rows, columns=names)
    for c in df.columns:  # Decimal → float for portable numerics
        if df[c].map(lambda v: v.__class__.__name__ == "Decimal").any():
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return pa.Table.from_pandas(df, preserve_index=False), {"format": "postgresql", "notes": []}


def read_source(p: dict):
    """Dispatch on the source described by the CLI's params. Returns (table, read_info, source_dict)."""
    uri = p["source"]
    src = parse_uri(uri)
    table_arg, query = p.get("table") or None, p.get("query") or None
    if src["kind"] in ("file", "dir"):
        path = src["path"]
        if src["kind"] == "dir":
            if not table_arg:
                raise UsageError(f"{path} is a directory: pass --table FILE to pick a file in it")
            path = os.path.join(path, table_arg)
        elif query or table_arg:
            raise UsageError("--table/--query apply to database sources, not to a file")
        table, info = read_file(path, fmt=p.get("format"), delimiter=p.get("delimiter") or None,
                                encoding=p.get("encoding") or None, on_bad_rows=p.get("on_bad_rows") or "error")
        source = {"kind": "file", "path": path, "size_bytes": os.path.getsize(path),
                  "mtime": os.path.getmtime(path)}
    elif src["kind"] == "sqlite":
        table, info = read_sqlite(src["path"], table_arg, query)
        source = {"kind": "sqlite", "path": src["path"], "table": table_arg, "query": query}
    else:
        table, info = read_postgres(src, p.get("password_env") or "PGPASSWORD", table_arg, query)
        source = {"kind": "postgresql", "uri": f"postgresql://{src['user'] + '@' if src['user'] else ''}{src['host']}:{src['port']}/{src['dbname']}",
                  "table": table_arg, "query": query}
    if p.get("connection"):
        source["connection"] = p["connection"]
    if table.num_columns == 0:
        raise UsageError("the source has no columns: nothing to ingest")
    return table, info, source


def default_label(source: dict) -> str:
    if source.get("table"):
        return source["table"]
    if source.get("path"):
        return os.path.splitext(os.path.basename(source["path"]))[0]
    return source.get("kind", "dataset")


def existing_data_object(label: str, content_hash: str) -> str | None:
    """The newest successful IngestDataset run with this label and content hash, if any."""
    from loom_py.runtime.data import client, labelled

    mf = client()
    for ps in labelled(label, ("IngestDataset",)):
        try:
            d = mf.Run(ps).data
            if "content_hash" in d and d.content_hash == content_hash:
                return ps
        except Exception:
            continue
    return None


def prepare(params: dict) -> dict:
    """Bridge hook: read the source now (errors → exit 2, nothing written) and stage it as Parquet."""
    import json

    from loom_py.runtime.data import dataset_artifacts
    from loom_py.stats.tabular import json_safe

    table, info, source = read_source(params)
    stage_dir = os.environ.get("LOOM_TMP") or tempfile.gettempdir()
    os.makedirs(stage_dir, exist_ok=True)
    label = params.get("name") or default_label(source)
    # Everything about the table is computed here, once, where it is already in memory: the flow step
    # only records it (it needs no pyarrow, which keeps a small ingest close to a bare flow's cost).
    arts = dataset_artifacts(table, label=label, source=source, lineage={"verb": "ingest", "inputs": []})
    if not params.get("new"):
        same = existing_data_object(label, arts["content_hash"])
        if same:
            return {"reuse": same, "messages": [
                f"{same} already holds this table as '{label}' (same content hash): returned it; "
                "pass --new for a separate data object"]}
    parquet = arts.pop("data_parquet")
    arts["read"] = info
    arts["sample"] = json_safe(table.slice(0, 20).to_pylist())
    staged = []
    for suffix, payload in ((".parquet", parquet), (".json", json.dumps(arts, default=str).encode())):
        fd, path = tempfile.mkstemp(prefix="ingest-", suffix=suffix, dir=stage_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        staged.append(path)
    return {
        "params": {"data_parquet": staged[0], "dataset_meta": staged[1], "label": label},
        "inputs": [],
        "cleanup": staged,
    }
