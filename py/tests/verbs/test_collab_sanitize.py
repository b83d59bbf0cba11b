"""collab's sanitizer on a planted corpus: secrets in a connection's password variable, an environment
variable a run recorded, a column name, a card's text and a model's parameters, plus a distinctive raw
row, spread over summaries and cards of every shape Loom's verbs write. After sanitizing, neither the
files nor detect-secrets nor Loom's final check find any of them; a file that still holds one is named
with its kind (never the value)."""
import json
import os

import pyarrow as pa
import pytest

from loom_py.verbs import collab

DB_PASS = "Vx9-planted-DBpass-7431"
SERVICE_TOKEN = "tok_PLANTED_4e8c1d2b9a7f6e5d"
GH_COLUMN = "ghp_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7c"
URI_PW = "Pl4ntedUriPassw0rd"
MODEL_KEY = "sk-ant-api03-PLANTEDmodelparamKEY0123456789"
RAW_ROW = {"customer": "Zebediah-Quux-88231", "city": "Ulaanbaatar-Planted", "spend": 98765.4321, "plan": "pro"}
PLANTED = [DB_PASS, SERVICE_TOKEN, GH_COLUMN, URI_PW, MODEL_KEY, RAW_ROW["customer"], RAW_ROW["city"]]


@pytest.fixture()
def corpus(tmp_path):
    ws = tmp_path / "proj" / ".loom"
    ws.mkdir(parents=True)
    (ws / "connections.json").write_text(json.dumps({"db": {"name": "db", "uri": "postgresql://loom@db.internal:5432/prod",
                                                            "kind": "postgresql", "password_env": "DB_PASS"}}))
    env = {"DB_PASS": DB_PASS, "MY_SERVICE_TOKEN": SERVICE_TOKEN, "HOME": str(tmp_path / "home"), "PATH": "/usr/bin"}
    rows = [{"customer": f"cust-{i:05d}", "city": ["Oslo", "Lima", "Pune"][i % 3], "spend": float(i), "plan": "basic"}
            for i in range(300)] + [RAW_ROW]
    for r in rows:
        r[GH_COLUMN] = 1
    table = pa.Table.from_pylist(rows)
    san = collab.Sanitizer(ws_root=str(tmp_path / "proj"), home=str(tmp_path / "home"),
                           secrets=collab.known_secrets(str(ws), env), columns=[set(table.column_names)],
                           rare=collab.rare_values([table]))
    summary = {  # shapes of real summaries: eda's dtypes, ingest's sample, a search's parameters
        "dataset": "IngestDataset/1", "content_hash": "sha256:" + "ab" * 32,
        "source": {"kind": "file", "path": str(tmp_path / "proj" / "data" / "customers.csv")},
        "sample": rows[-5:],
        "dtypes": [{"column": c, "dtype": "string"} for c in table.column_names],
        "alerts": [{"column": "customer", "alert": f"high cardinality, e.g. {RAW_ROW['customer']}"}],
        "recorded_env": {"MY_SERVICE_TOKEN": SERVICE_TOKEN},
        "goal": f"predict churn from postgresql://admin:{URI_PW}@db.internal/prod (password {DB_PASS})",
        "model": {"name": "lgbm", "params": {"api_key": MODEL_KEY, "n_estimators": 200, "note": f"key {MODEL_KEY}"}},
        "leaderboard": [{"node": 1, "score": 0.8, "model": "lgbm"}],
        "log": f"wrote {ws}/artifacts/x.png and /home/alice/secret-project/notes.txt",
    }
    components = [{"type": "page", "contents": [{"type": "section", "contents": [
        {"type": "markdown", "source": f"# Card\n- source: {tmp_path}/proj/data/customers.csv\n- uri postgresql://u:{URI_PW}@h/db"},
        {"type": "table", "columns": list(table.column_names), "data": [list(r.values()) for r in rows[-3:]]},
        {"type": "table", "columns": ["column", "top value"], "data": [["customer", RAW_ROW["customer"]], ["city", "Oslo"]]},
        {"type": "vegaChart", "spec": {"data": {"values": [{"category": RAW_ROW["city"], "n": 1}, {"category": "Oslo", "n": 100}]}}},
        {"type": "image", "src": "data:image/png;base64,AAAA"},
        {"type": "markdown", "source": f"model params: {{'token': '{SERVICE_TOKEN}'}} column `{GH_COLUMN}`"},
    ]}]}]
    return tmp_path, san, summary, components


def _write(stage, name, text):
    p = os.path.join(stage, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)
    return p


def test_planted_secrets_and_raw_rows_are_all_removed(corpus):
    tmp, san, summary, components = corpus
    stage = str(tmp / "stage")
    files = [_write(stage, "runs/x/summary.json", json.dumps(san.json(summary), indent=1)),
             _write(stage, "runs/x/card.md", collab.card_markdown(components, san))]
    for f in collab.detect_secrets_scan(files):
        if not san.allowed(f):
            collab._redact_finding(f["file"], f["line"], f["value"], f["kind"])
    text = "".join(open(p).read() for p in files)
    for planted in PLANTED:
        assert planted not in text, planted
    assert str(tmp) not in text and "/home/alice" not in text
    assert collab.final_check(files, san, stage) == []
    r = san.removed
    for kind in ("raw_rows", "raw_value", "connection_password", "environment_secret", "uri_password", "anthropic_key",
                 "github_token", "secret_field", "absolute_path", "image"):
        assert r.get(kind, 0) >= 1, (kind, r)
    assert r["raw_rows"] == 5 + 3  # ingest's sample and the card's row-level table
    # aggregates and Loom's own hashes stay
    assert "sha256:" + "ab" * 32 in text and '"leaderboard"' in text and "Oslo" in text
    assert "<workspace>/data/customers.csv" in text


def test_a_file_still_holding_a_secret_is_named_with_its_kind_not_its_value(corpus):
    tmp, san, _summary, _components = corpus
    stage = str(tmp / "stage2")
    ok = _write(stage, "runs/a/summary.json", json.dumps({"status": "OK"}))
    bad = _write(stage, "runs/b/card.md", f"password = {DB_PASS}\ncolumn {GH_COLUMN}\n")
    problems = collab.final_check([ok, bad], san, stage)
    assert problems and {p["file"] for p in problems} == {"runs/b/card.md"}
    kinds = {p["kind"] for p in problems}
    assert "connection_password" in kinds and "GitHub Token" in kinds
    assert DB_PASS not in json.dumps(problems) and GH_COLUMN not in json.dumps(problems)


def test_openlineage_events_carry_job_run_inputs_outputs_and_hashes():
    nodes = [{"pathspec": "IngestDataset/1", "flow": "IngestDataset", "inputs": [], "created": "2026-01-01T00:00:00"},
             {"pathspec": "EdaFlow/2", "flow": "EdaFlow", "inputs": ["IngestDataset/1"], "created": "2026-01-01T00:01:00",
              "status": "OK"}]
    ev = collab.lineage_events(nodes, {"IngestDataset/1": "sha256:" + "cd" * 32, "EdaFlow/2": "sha256:" + "ef" * 32})
    assert [e["job"]["name"] for e in ev] == ["IngestDataset", "EdaFlow"]
    assert ev[1]["inputs"][0]["name"] == "IngestDataset/1"
    assert ev[1]["inputs"][0]["facets"]["loom_contentHash"]["sha256"] == "cd" * 32
    assert ev[1]["outputs"][0]["facets"]["loom_contentHash"]["sha256"] == "ef" * 32
    assert ev[0]["run"]["runId"] != ev[1]["run"]["runId"] and all(e["eventType"] == "COMPLETE" for e in ev)


@pytest.mark.parametrize("dest,ok", [("s3://bucket/prefix", True), ("https://example.org/put?sig=1", True),
                                     ("http://127.0.0.1:9/x", True), ("http://example.org/x", False), ("ftp://x/y", False),
                                     ("s3:///nobucket", False)])
def test_send_destinations(dest, ok):
    from loom_py.runtime.errors import UsageError

    if ok:
        collab.check_dest(dest)
    else:
        with pytest.raises(UsageError):
            collab.check_dest(dest)
    assert "sig" not in collab._display_dest("https://example.org/put?X-Amz-Signature=sig")
