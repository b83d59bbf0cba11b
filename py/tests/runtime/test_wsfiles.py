"""runtime/wsfiles.py: a task's workspace files carried by the run and materialized elsewhere, hash-checked.
(Through real runs on S3 with the files removed: test/integration/scaleout.test.ts.)"""

import hashlib
import os
import types

from loom_py.runtime import wsfiles


class Flow:  # what a step's `self` is to keep(): attributes become artifacts
    pass


def _run_of(flow):
    return types.SimpleNamespace(data=types.SimpleNamespace(**{wsfiles.INDEX: getattr(flow, wsfiles.INDEX),
                                                               wsfiles.FILES: getattr(flow, wsfiles.FILES)}))


def _writer(tmp_path, files):
    ws = tmp_path / "task"
    for rel, b in files.items():
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b)
    return ws


def test_keep_then_materialize_elsewhere_restores_equal_bytes(tmp_path, monkeypatch):
    files = {"artifacts/deploy/7/manifest.json": b"{}", "artifacts/deploy/7/model/model.pkl": os.urandom(5000)}
    ws = _writer(tmp_path, files)
    monkeypatch.setenv("LOOM_WORKSPACE_DIR", str(ws))
    f = Flow()
    idx = wsfiles.keep(f, str(ws / "artifacts" / "deploy" / "7"))
    assert [e["path"] for e in idx["files"]] == sorted(files)
    assert all(e["stored"] for e in idx["files"])
    here = tmp_path / "launcher"
    got = wsfiles.materialize(_run_of(f), ws=str(here))
    assert sorted(got["restored"]) == sorted(files) and not got["refused"] and not got["not_stored"]
    for rel, b in files.items():
        assert (here / rel).read_bytes() == b
    # the same files again: nothing rewritten
    m0 = {rel: os.stat(here / rel).st_mtime_ns for rel in files}
    again = wsfiles.materialize(_run_of(f), ws=str(here))
    assert again["restored"] == [] and {rel: os.stat(here / rel).st_mtime_ns for rel in files} == m0
    # the result's paths named for this machine
    s = wsfiles.remap({"stage_dir": str(ws / "artifacts/deploy/7"), "msgs": [f"staged under {ws}/artifacts/deploy/7; ok"]},
                      idx["root"], str(here))
    assert s == {"stage_dir": str(here / "artifacts/deploy/7"), "msgs": [f"staged under {here}/artifacts/deploy/7; ok"]}


def test_changed_file_restored_by_default_left_with_only_missing(tmp_path, monkeypatch):
    ws = _writer(tmp_path, {"artifacts/reports/3/model_card.md": b"# card"})
    monkeypatch.setenv("LOOM_WORKSPACE_DIR", str(ws))
    f = Flow()
    wsfiles.keep(f, str(ws / "artifacts/reports/3/model_card.md"))
    p = ws / "artifacts/reports/3/model_card.md"
    p.write_bytes(b"# edited")
    assert wsfiles.materialize(_run_of(f), ws=str(ws), only_missing=True)["restored"] == []
    assert p.read_bytes() == b"# edited"
    assert wsfiles.materialize(_run_of(f), ws=str(ws))["restored"] == ["artifacts/reports/3/model_card.md"]
    assert p.read_bytes() == b"# card"


def test_bytes_not_matching_their_hash_are_never_written(tmp_path, monkeypatch):
    ws = _writer(tmp_path, {"artifacts/viz/1/a.png": b"png"})
    monkeypatch.setenv("LOOM_WORKSPACE_DIR", str(ws))
    f = Flow()
    wsfiles.keep(f, str(ws / "artifacts/viz/1"))
    getattr(f, wsfiles.FILES)["artifacts/viz/1/a.png"] = b"tampered"
    here = tmp_path / "launcher"
    got = wsfiles.materialize(_run_of(f), ws=str(here))
    assert got["refused"] == ["artifacts/viz/1/a.png"] and not (here / "artifacts/viz/1/a.png").exists()


def test_paths_leaving_the_workspace_are_refused(tmp_path):
    bad = {"root": "/x", "files": [{"path": p, "sha256": hashlib.sha256(b"x").hexdigest(), "bytes": 1, "stored": True}
                                   for p in ("../evil", "/etc/passwd", "a/../../b", "a//b")]}
    run = types.SimpleNamespace(data=types.SimpleNamespace(**{wsfiles.INDEX: bad, wsfiles.FILES: {}}))
    got = wsfiles.materialize(run, ws=str(tmp_path))
    assert sorted(got["refused"]) == sorted(e["path"] for e in bad["files"]) and os.listdir(tmp_path) == []


def test_over_the_cap_is_indexed_not_stored(tmp_path, monkeypatch):
    ws = _writer(tmp_path, {"artifacts/train/T-1/a.bin": b"a" * 600, "artifacts/train/T-1/b.bin": b"b" * 600})
    monkeypatch.setenv("LOOM_WORKSPACE_DIR", str(ws))
    monkeypatch.setenv("LOOM_WORKSPACE_FILES_MAX_MB", str(1000 / (1 << 20)))  # 1000 bytes
    f = Flow()
    idx = wsfiles.keep(f, str(ws / "artifacts/train/T-1"))
    assert [e["stored"] for e in idx["files"]] == [True, False]
    assert list(getattr(f, wsfiles.FILES)) == ["artifacts/train/T-1/a.bin"]
    got = wsfiles.materialize(_run_of(f), ws=str(tmp_path / "launcher"))
    assert got["restored"] == ["artifacts/train/T-1/a.bin"] and got["not_stored"] == ["artifacts/train/T-1/b.bin"]


def test_a_run_that_kept_nothing(tmp_path):
    run = types.SimpleNamespace(data=types.SimpleNamespace())
    assert wsfiles.materialize(run, ws=str(tmp_path))["files"] == 0
