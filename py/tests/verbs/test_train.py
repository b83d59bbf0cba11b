"""train: cost plans, request checks, column detection, sequences, the PPMI+SVD builder, the Modal app."""

import json
import os
import py_compile

import numpy as np
import pandas as pd
import pytest

from loom_py.runtime import flowkit
from loom_py.runtime.errors import UsageError
from loom_py.verbs.train import Request, budgets, cost_plan, usd_text
from loom_py.verbs.train import local as L
from loom_py.verbs.train import modal_app, nemo_export
from loom_py.verbs.train.providers import PROVIDERS, LocalProvider, NemoProvider, get_provider
from loom_py.verbs.train.sequences import Columns, build_sequences, check_sequences, detect_columns

flowkit.pin_threads(1)


def markov_log(n_events=20000, n_types=120, n_users=800, seed=0, fanout=4, noise=0.1):
    """Users walk a sparse random Markov chain over event types (with popularity-weighted restarts)."""
    rng = np.random.default_rng(seed)
    succ = rng.integers(0, n_types, size=(n_types, fanout))
    probs = rng.dirichlet(np.ones(fanout) * 0.7, size=n_types)
    pop = rng.zipf(1.5, n_types).astype(float)
    pop /= pop.sum()
    lens = rng.multinomial(n_events - 3 * n_users, np.ones(n_users) / n_users) + 3
    users, ts, ev = [], [], []
    for u, n in enumerate(lens):
        s = rng.choice(n_types, p=pop)
        for t in range(n):
            users.append(f"u{u}")
            ts.append(t)
            ev.append(f"e{s}")
            s = succ[s, rng.choice(fanout, p=probs[s])] if rng.random() > noise else rng.choice(n_types, p=pop)
    df = pd.DataFrame({"user_id": users, "ts": pd.to_datetime(ts, unit="s", origin="2024-01-01"), "event": ev})
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def log():
    return markov_log()


# ---- cost plans -----------------------------------------------------------------------------------

@pytest.mark.parametrize("budget,rate,line", [
    ("full", 3.0, "budget=full: 8 GPU x 12 h = 96 GPU-hours (~$288)"),
    ("small", 3.0, "budget=small: 2 GPU x 4 h = 8 GPU-hours (~$24)"),
    ("probe", 3.0, "budget=probe: 1 GPU x 1 h = 1 GPU-hours (~$3)"),
    ("probe", 2.5, "budget=probe: 1 GPU x 1 h = 1 GPU-hours (~$2.50)"),
    ("full", 4.0, "budget=full: 8 GPU x 12 h = 96 GPU-hours (~$384)"),
])
def test_cost_plan_lines(budget, rate, line):
    plan = cost_plan(budget, rate)
    assert plan["line"] == line
    assert plan["gpu_hours"] == plan["gpus"] * plan["hours"]
    assert plan["usd"] == pytest.approx(plan["gpu_hours"] * rate)


def test_budgets_grow_and_providers_match_registry():
    b = budgets()
    hours = [b["nemo"][k]["gpus"] * b["nemo"][k]["hours"] for k in ("probe", "small", "full")]
    dims = [b["local"][k]["dim"] for k in ("probe", "small", "full")]
    events = [b["local"][k]["max_events"] for k in ("probe", "small", "full")]
    assert hours == sorted(hours) and dims == sorted(dims) and events == sorted(events)
    assert sorted(b["providers"]) == sorted(PROVIDERS)
    assert b["local"]["probe"]["max_events"] >= 50000


@pytest.mark.parametrize("usd,text", [(288.0, "~$288"), (3.0, "~$3"), (1.5, "~$1.50"), (1234.0, "~$1,234")])
def test_usd_text(usd, text):
    assert usd_text(usd) == text


# ---- request checks -------------------------------------------------------------------------------

BASE = {"dataset": "IngestDataset/1", "objective": "next-event", "budget": "probe"}


@pytest.mark.parametrize("change,needle", [
    ({"provider": "torch"}, "unknown provider 'torch'"),
    ({"objective": "classify"}, "unknown objective 'classify'"),
    ({"budget": "huge"}, "unknown budget 'huge'"),
    ({"backbone": "x; rm -rf /"}, "is not a recipe name"),
    ({"gpu_hourly_usd": "cheap"}, "LOOM_GPU_HOURLY_USD=cheap"),
    ({"dataset": ""}, "--dataset"),
])
def test_request_rejects_bad_input(change, needle, monkeypatch):
    monkeypatch.delenv("LOOM_MODEL_BUILDER_PROVIDER", raising=False)
    with pytest.raises(UsageError, match=None) as e:
        Request.from_params({**BASE, **change})
    assert needle in e.value.message


def test_request_provider_from_env_and_flag(monkeypatch):
    monkeypatch.setenv("LOOM_MODEL_BUILDER_PROVIDER", "local")
    assert Request.from_params(BASE).provider == "local"
    assert Request.from_params({**BASE, "provider": "nemo"}).provider == "nemo"
    monkeypatch.delenv("LOOM_MODEL_BUILDER_PROVIDER")
    assert Request.from_params(BASE).provider == "nemo"


def test_nemo_refuses_without_target_with_the_plan(monkeypatch):
    monkeypatch.delenv("LOOM_GPU_TARGET", raising=False)
    req = Request.from_params({**BASE, "budget": "full"})
    with pytest.raises(UsageError) as e:
        NemoProvider().check(req)
    assert e.value.exit_code == 2 and e.value.status == "REFUSED_NO_GPU_TARGET"
    assert "LOOM_GPU_TARGET" in e.value.message and "LOOM_MODEL_BUILDER_PROVIDER=local" in e.value.message
    assert e.value.summary["cost"]["line"] == "budget=full: 8 GPU x 12 h = 96 GPU-hours (~$288)"


def test_local_refuses_finetune_and_launch():
    with pytest.raises(UsageError, match="LOOM_GPU_TARGET"):
        LocalProvider().check(Request.from_params({**BASE, "objective": "finetune", "provider": "local"}))
    with pytest.raises(UsageError, match="--launch needs a GPU builder"):
        LocalProvider().check_launch(Request.from_params({**BASE, "provider": "local", "launch": True}))
    with pytest.raises(UsageError):
        get_provider("nope")


def test_nemo_plan_carries_cost_backbone_recipe_data_target():
    req = Request.from_params({**BASE, "budget": "small", "gpu_target": "modal:a100-80gb", "entity": "u"})
    plan = NemoProvider().plan(req, {"pathspec": "IngestDataset/1", "rows": 10, "content_hash": "sha256:x",
                                     "columns": {"entity": "u", "time": "t", "event": "e"}})
    assert plan["backbone"] == budgets()["default_backbone"]["next-event"]
    assert plan["recipe"].endswith(".pretrain_recipe") and plan["usd"] == 24.0
    assert plan["target"]["gpu"] == "A100-80GB"
    assert plan["launch_command"].startswith("LOOM_GPU_TARGET=modal:a100-80gb loom train --dataset IngestDataset/1")
    assert plan["launch_command"].endswith("--launch")


# ---- columns and sequences ------------------------------------------------------------------------

def test_detect_columns_guesses_entity_time_event(log):
    c = detect_columns(log, objective="next-event")
    assert (c.entity, c.time, c.event) == ("user_id", "ts", "event")
    assert len(c.notes) == 3


@pytest.mark.parametrize("frame,kw,needle", [
    (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), {"event": "zz"}, "column 'zz' (--event)"),
    (pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["x", "y", "x"]}), {}, "pass --time"),
    (pd.DataFrame({"ts": [1, 2, 3], "event": ["x", "y", "x"]}), {}, "pass --entity"),
    (pd.DataFrame({"user_id": ["a", "a", "b"], "ts": [1, 2, 3], "value": [0.1, 0.2, 0.3]}), {}, "pass --event"),
    (pd.DataFrame({"u": ["a", "a"], "t": [1, 2], "e": ["x", "y"]}), {"entity": "u", "time": "u", "event": "e"}, "different"),
])
def test_detect_columns_errors(frame, kw, needle):
    with pytest.raises(UsageError) as e:
        detect_columns(frame, objective="next-event", **kw)
    assert needle in e.value.message


def test_embedding_objective_needs_no_time():
    df = pd.DataFrame({"customer_id": ["a", "a", "b", "b"], "item": ["x", "y", "y", "z"]})
    c = detect_columns(df, objective="embedding")
    assert c.time is None and c.entity == "customer_id" and c.event == "item"


def test_sequences_are_time_ordered_and_row_order_free():
    df = pd.DataFrame({"u": ["b", "a", "a", "b", "a"], "t": [2, 3, 1, 1, 2], "e": ["b2", "a3", "a1", "b1", "a2"]})
    cols = Columns("u", "t", "e", [])
    s = build_sequences(df, cols)
    assert s.tokens.tolist() == ["a1", "a2", "a3", "b1", "b2"]
    assert s.starts.tolist() == [0, 3, 5]
    s2 = build_sequences(df.iloc[::-1], cols)
    assert s2.tokens.tolist() == s.tokens.tolist()


@pytest.mark.parametrize("times", [
    pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-01", "2024-01-01", "2024-01-02"]).tz_localize("UTC"),
    ["2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
    [2.0, 3.0, 1.0, 1.0, None],
])
def test_sequences_order_by_any_time_type(times):
    df = pd.DataFrame({"u": ["b", "a", "a", "b", "a"], "t": times, "e": ["b2", "a3", "a1", "b1", "a2"]})
    s = build_sequences(df, Columns("u", "t", "e", []))
    assert s.tokens.tolist()[:2] == ["a1", "a2"] or s.tokens.tolist()[:3] == ["a1", "a3", "a2"]
    assert s.tokens.tolist()[3:] == ["b1", "b2"]


def test_sequences_truncate_at_whole_sequences():
    df = pd.DataFrame({"u": list("aaabbbccc"), "t": list(range(9)), "e": list("xyzxyzxyz")})
    s = build_sequences(df, Columns("u", "t", "e", []), max_events=7)
    assert s.truncated and s.n_events == 6 and s.n_sequences == 2


@pytest.mark.parametrize("frame,needle", [
    (pd.DataFrame({"u": list("aaabbb"), "t": range(6), "e": ["x"] * 6}), "1 event type"),
    (pd.DataFrame({"u": list("aabbcc"), "t": range(6), "e": list("xyxyxy")}), "too short to hold out"),
])
def test_bad_sequences(frame, needle):
    s = build_sequences(frame, Columns("u", "t", "e", []))
    with pytest.raises(UsageError) as e:
        check_sequences(s, "e")
    assert needle in e.value.message


# ---- the builder ----------------------------------------------------------------------------------

def test_ppmi_by_hand():
    import scipy.sparse as sp

    M = sp.csr_matrix(np.array([[0.0, 2.0], [1.0, 1.0]]))
    P = L.ppmi(M, alpha=1.0).toarray()
    # total 4; p(row0)=.5, p(row1)=.5; p(col0)=.25, p(col1)=.75
    assert P[0, 1] == pytest.approx(np.log((2 / 4) / (0.5 * 0.75)))
    assert P[1, 0] == pytest.approx(np.log((1 / 4) / (0.5 * 0.25)))
    assert P[0, 0] == 0 and P[1, 1] == 0  # log(0.25/0.375) < 0 → clipped


def test_randomized_svd_matches_exact_and_signs_normalized():
    rng = np.random.default_rng(1)
    A = rng.random((60, 8)) @ rng.random((8, 50))  # rank 8
    U, S, Vt = L.randomized_svd(A, 5)
    exact = np.linalg.svd(A, compute_uv=False)[:5]
    assert np.allclose(S, exact, rtol=1e-8)
    idx = np.argmax(np.abs(U), axis=0)
    assert (U[idx, np.arange(5)] > 0).all()
    U2, S2, Vt2 = L.randomized_svd(A, 5)
    assert np.array_equal(U, U2) and np.array_equal(Vt, Vt2)


def test_ranks_average_ties():
    scores = np.array([[3.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    r = L._ranks(scores, np.array([1, 2]))
    assert r.tolist() == [2.5, 2.5]
    assert np.isinf(L._ranks(scores, np.array([-1, 0]))[0])


def _build(df, objective="next-event", budget="probe"):
    size = budgets()["local"][budget]
    cols = detect_columns(df, objective=objective)
    seqs = build_sequences(df, cols, size["max_events"])
    bb = L.build(seqs, objective=objective, dim=size["dim"], window=size["window"], max_vocab=size["max_vocab"])
    return bb, L.evaluate(bb, seqs, window=size["window"])


def test_backbone_beats_popularity_on_markov_events(log):
    bb, m = _build(log)
    assert m["heldout"] == log["user_id"].nunique()
    assert m["hit_at_10"] > m["baseline_hit_at_10"] + 0.15
    assert m["mrr"] > 1.5 * m["baseline_mrr"]
    assert bb.embeddings.shape == (len(bb.vocab), 32) and bb.embeddings.dtype == np.float32


def test_backbone_is_bit_identical_and_row_order_free(log):
    a, _ = _build(log)
    b, _ = _build(log.copy())
    c, _ = _build(log.sample(frac=1, random_state=7))
    assert a.sha256 == b.sha256 == c.sha256
    assert a.sha256 == L.backbone_hash(a.embeddings, a.context)
    d, _ = _build(log, budget="small")
    assert d.sha256 != a.sha256 and d.embeddings.shape[1] > a.embeddings.shape[1]


def test_embedding_objective_symmetric_counts(log):
    bb, m = _build(log, objective="embedding")
    assert bb.config["directional"] is False and m["heldout"] > 0


def test_projection_spec_is_plain_json(log):
    from loom_py.verbs.train.providers import projection_spec

    bb, _ = _build(log)
    spec = projection_spec(bb)
    json.dumps(spec)
    pts = spec["data"]["values"]
    assert len(pts) == len(bb.vocab) and sum(1 for p in pts if p["label"]) == 15
    assert pts[0]["event"] == bb.vocab[0] and pts[0]["x"] == pytest.approx(float(bb.embeddings[0, 0]), abs=1e-4)


def test_heldout_events_never_counted():
    df = pd.DataFrame({"u": list("aaaa"), "t": range(4), "e": ["x", "y", "x", "NEW"]})
    s = build_sequences(df, Columns("u", "t", "e", []))
    bb = L.build(s, objective="next-event", dim=4, window=2, max_vocab=10)
    assert "NEW" not in bb.vocab
    m = L.evaluate(bb, s, window=2)
    assert m["unseen_heldout"] == 1 and m["hit_at_10"] == 0.0


# ---- the Modal launcher ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw,gpu", [("modal:H100", "H100"), ("h100", "H100"), ("modal:a100-80gb", "A100-80GB"), ("modal:", "H100")])
def test_parse_target(raw, gpu):
    assert modal_app.parse_target(raw)["gpu"] == gpu


@pytest.mark.parametrize("raw,needle", [("slurm:H100", "unknown launcher"), ("modal:TPU", "unknown GPU")])
def test_parse_target_rejects(raw, needle):
    with pytest.raises(UsageError, match=needle):
        modal_app.parse_target(raw)


def _export(objective, frame, tmp_path):
    cols = detect_columns(frame, objective="next-event")
    seqs = build_sequences(frame, cols)
    return seqs, nemo_export.export(objective, seqs, str(tmp_path / objective))


@pytest.mark.parametrize("objective,module_name", [("next-event", "PreTrainingDataModule"),
                                                   ("finetune", "FineTuningDataModule"),
                                                   ("embedding", "CustomRetrievalDataModule")])
def test_generated_modal_app_compiles_and_points_the_recipe_at_the_export(tmp_path, log, objective, module_name):
    import ast

    req = Request.from_params({**BASE, "objective": objective, "budget": "full", "gpu_target": "modal:H100"})
    plan = NemoProvider().plan(req, {"pathspec": "IngestDataset/1", "rows": 10, "content_hash": "sha256:x",
                                     "columns": {"entity": "user_id", "time": "ts", "event": "event"}})
    plan["app_name"] = "loom-train-test"
    _, manifest = _export(objective, log.head(3000), tmp_path)
    path = modal_app.write_app(plan, str(tmp_path), str(tmp_path / objective))
    py_compile.compile(path, doraise=True)
    src = open(path).read()
    assert 'GPU = "H100:8"' in src and "timeout=43200" in src and "def submit(local_dir" in src
    embedded = json.loads(json.loads(src.split("PLAN = json.loads(", 1)[1].split(")\n", 1)[0]))
    assert embedded["recipe"] == plan["recipe"] and embedded["gpus"] == 8
    shipped = json.loads(json.loads(src.split("MANIFEST = json.loads(", 1)[1].split(")\n", 1)[0]))
    assert shipped == manifest  # the GPU side checks every file's sha256 against what was exported
    tree = ast.parse(src)
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert module_name in names
    train_fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    assigned = [ast.unparse(t) for n in ast.walk(train_fn) if isinstance(n, ast.Assign) for t in n.targets]
    assert "recipe.data" in assigned  # the recipe's default (mock / SQuAD / SPECTER) data is replaced


def test_recipe_names_exist_in_nemo():
    """The recipe modules and factories Loom plans with (checked against NeMo 2.x's recipe catalogue:
    nemo/collections/llm/recipes/<name>.py defining pretrain_recipe / finetune_recipe)."""
    req = lambda o: Request.from_params({**BASE, "objective": o, "gpu_target": "modal:H100"})  # noqa: E731
    data = {"pathspec": "IngestDataset/1", "rows": 1, "content_hash": "x", "columns": {}}
    got = {o: NemoProvider().plan(req(o), data)["recipe"] for o in ("next-event", "finetune", "embedding")}
    assert got == {"next-event": "nemo.collections.llm.recipes.llama32_1b.pretrain_recipe",
                   "finetune": "nemo.collections.llm.recipes.llama3_8b.finetune_recipe",
                   "embedding": "nemo.collections.llm.recipes.llama_embedding_1b.finetune_recipe"}


# ---- the export the recipe trains on --------------------------------------------------------------

def test_indexed_dataset_layout_is_megatrons(tmp_path):
    """Byte layout of Megatron-Core's MMIDIDX v1 index, written out by hand for a known input."""
    import struct

    prefix = str(tmp_path / "d")
    info = nemo_export.write_indexed_dataset(prefix, [np.array([5, 6, 2]), np.array([7, 2])], "uint16")
    raw = open(prefix + ".idx", "rb").read()
    expect = (b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", 8) + struct.pack("<QQ", 2, 3)
              + struct.pack("<2i", 3, 2) + struct.pack("<2q", 0, 6) + struct.pack("<3q", 0, 1, 2))
    assert raw == expect
    assert open(prefix + ".bin", "rb").read() == struct.pack("<5H", 5, 6, 2, 7, 2)
    assert info == {"sequences": 2, "tokens": 5, "dtype": "uint16"}
    back = nemo_export.read_indexed_dataset(prefix)
    assert [b.tolist() for b in back["sequences"]] == [[5, 6, 2], [7, 2]]


def test_next_event_export_round_trips_and_is_deterministic(tmp_path, log):
    seqs, m = _export("next-event", log, tmp_path)
    back = nemo_export.read_indexed_dataset(str(tmp_path / "next-event" / "events"))
    vocab = json.load(open(tmp_path / "next-event" / "vocab.json"))
    eod = m["special_ids"]["eod"]
    assert m["entities"] == seqs.n_sequences == len(back["sequences"]) and m["events"] == seqs.n_events
    first = seqs.tokens[seqs.starts[0]:seqs.starts[1]].tolist()
    assert [vocab[i] for i in back["sequences"][0][:-1]] == first and back["sequences"][0][-1] == eod
    assert m["tokens"] == seqs.n_events + seqs.n_sequences and back["dtype"] == "uint16"
    assert 64 <= m["seq_length"] <= nemo_export.MAX_SEQ_LENGTH
    _, again = _export("next-event", log.sample(frac=1, random_state=7), tmp_path / "again")
    assert again["files"] == m["files"]  # same data in another row order: byte-identical export


def test_tokenizer_loads_with_the_libraries_nemo_uses(tmp_path, log):
    """tokenizer.json through the `tokenizers` library, and the directory through transformers'
    AutoTokenizer.from_pretrained (what NeMo's AutoTokenizer wraps): same ids as the indexed dataset."""
    import tokenizers  # test requirements (py/requirements-test.txt)
    import transformers
    frame = log.head(4000).copy()
    frame.loc[frame.index[:50], "event"] = "page view"  # an event name with a space
    seqs, m = _export("next-event", frame, tmp_path)
    tok_dir = tmp_path / "next-event" / "tokenizer"
    back = nemo_export.read_indexed_dataset(str(tmp_path / "next-event" / "events"))
    vocab = json.load(open(tmp_path / "next-event" / "vocab.json"))
    texts = nemo_export.token_texts(vocab)
    doc = back["sequences"][0][:-1].tolist()
    line = " ".join(texts[i] for i in doc)
    assert tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json")).encode(line).ids == doc
    hf = transformers.AutoTokenizer.from_pretrained(str(tok_dir))
    assert hf(line)["input_ids"] == doc
    assert hf.eos_token_id == m["special_ids"]["eod"] and hf.pad_token_id == m["special_ids"]["pad"]
    assert len(hf) == m["vocab_size"]
    assert hf.convert_tokens_to_ids(texts[vocab.index("page view")]) == vocab.index("page view")


def test_finetune_and_embedding_exports(tmp_path, log):
    seqs, ft = _export("finetune", log.head(3000), tmp_path)
    rows = [json.loads(l) for name in ("training", "validation", "test")
            for l in open(tmp_path / "finetune" / f"{name}.jsonl")]
    assert len(rows) == seqs.n_events - seqs.n_sequences == sum(ft["examples"].values())
    assert all(set(r) == {"input", "output"} and r["input"].endswith("next event:") for r in rows)
    assert sum(ft["entities_per_split"].values()) == seqs.n_sequences and ft["examples"]["training"] > ft["examples"]["test"]
    _, emb = _export("embedding", log.head(3000), tmp_path)
    recs = json.load(open(tmp_path / "embedding" / "retrieval.json"))
    assert len(recs) == emb["examples"] == seqs.n_events - seqs.n_sequences
    assert all(r["pos_doc"][0] not in r["neg_doc"] and len(r["neg_doc"]) == nemo_export.NEGATIVES for r in recs)


def test_modal_client_missing_or_without_credentials(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("modal") is None:
        with pytest.raises(UsageError, match="pip install modal"):
            modal_app.check_client()
    # a stand-in package directory named modal, to reach the credential check
    (tmp_path / "pkg" / "modal").mkdir(parents=True)
    (tmp_path / "pkg" / "modal" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    importlib.invalidate_caches()
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "absent.toml"))
    with pytest.raises(UsageError, match="modal token new"):
        modal_app.check_client()
    cfg = tmp_path / "modal.toml"
    cfg.write_text('[default]\ntoken_id = "ak-1"\ntoken_secret = "as-1"\n')
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(cfg))
    modal_app.check_client()
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-1")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-1")
    modal_app.check_client()


def test_launch_records_app_plan_and_export(tmp_path, monkeypatch, log):
    """Everything up to the Modal boundary: export, generated app, and what the run records. The submit
    call itself (Modal's client) is the one piece replaced here; it cannot be reached from this machine."""
    from loom_py.verbs.train.providers import NemoProvider

    seen = {}

    def fake_submit(app_path, export_dir):
        seen["app"], seen["export"] = app_path, export_dir
        return {"app_id": "ap-123", "call_id": "fc-456", "gpu": "H100:8"}

    monkeypatch.setattr(modal_app, "check_client", lambda: None)
    monkeypatch.setattr(modal_app, "submit", fake_submit)
    req = Request.from_params({**BASE, "budget": "full", "gpu_target": "modal:H100", "launch": True})
    cols = detect_columns(log, objective="next-event")
    req.entity, req.time, req.event = cols.entity, cols.time, cols.event
    p = NemoProvider()
    plan = p.plan(req, {"pathspec": "IngestDataset/1", "rows": len(log), "content_hash": "sha256:x",
                        "columns": {"entity": cols.entity, "time": cols.time, "event": cols.event}})
    out = p.execute(req, plan, log, cols, str(tmp_path / "w"))
    assert out.status == "LAUNCHED"
    assert out.summary["launch"]["app_id"] == "ap-123" and out.summary["launch"]["target"] == "modal:H100"
    assert out.artifacts["plan"]["cost_line"] == "budget=full: 8 GPU x 12 h = 96 GPU-hours (~$288)"
    py_compile.compile(seen["app"], doraise=True)
    assert out.artifacts["modal_app_source"] == open(seen["app"]).read()
    m = out.artifacts["export_manifest"]
    assert m["format"] == "megatron_indexed_dataset" and out.summary["export"]["events"] == len(log)
    back = nemo_export.read_indexed_dataset(os.path.join(seen["export"], m["prefix"]))
    assert len(back["sequences"]) == log.user_id.nunique() == m["entities"]
