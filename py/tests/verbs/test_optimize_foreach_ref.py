"""The foreach executor's data reference against a real Metaflow content-addressed store on a local datastore
(no run): staged once, the same key for the same data, loaded back verified, refused when the stored bytes or
the reference are altered."""
import hashlib
import os

import pandas as pd
import pytest

from loom_py.verbs.optimize import foreach, sandbox


@pytest.fixture
def staged(tmp_path, monkeypatch):
    monkeypatch.setenv("METAFLOW_DEFAULT_DATASTORE", "local")
    monkeypatch.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(tmp_path / "ds"))
    (tmp_path / "ds" / ".metaflow").mkdir(parents=True)
    monkeypatch.setattr(foreach, "_STAGED", {})
    df = pd.DataFrame({"a": range(200), "b": [i % 3 for i in range(200)], "y": [i % 2 for i in range(200)]})
    folds = []
    for j in range(2):
        d = str(tmp_path / "work" / f"fold-{j + 1}")
        va = df.iloc[j::2].reset_index(drop=True)
        sandbox.stage(d, df.drop(index=va.index).reset_index(drop=True), va.drop(columns=["y"]), va.drop(columns=["y"]).head(1),
                      {"target": "y", "task": "classification"})
        folds.append({"name": f"fold-{j + 1}", "data_dir": d})
    return tmp_path, folds


def test_stored_once_loaded_back_verified(staged):
    tmp, folds = staged
    ref = foreach.stage_data(folds)
    assert foreach.stage_data(folds) is ref  # the next round: the cached reference, nothing packed or sent
    store = foreach.round_store()
    blob_path = tmp / "ds" / ".metaflow" / "OptimizeRoundFlow" / "data" / ref["key"][:2] / ref["key"]
    assert blob_path.is_file() and blob_path.stat().st_size == ref["bytes"]
    blob = foreach.fetch_data(ref, store)
    assert hashlib.sha256(blob).hexdigest() == ref["sha256"]
    dirs = foreach.unpack(blob, ref, str(tmp / "task"))
    assert list(dirs) == ["fold-1", "fold-2"]
    for f in folds:
        for n in sandbox.DATA_FILES:
            assert open(os.path.join(dirs[f["name"]], n), "rb").read() == open(os.path.join(f["data_dir"], n), "rb").read()
    assert foreach.pack(folds)[0] == blob  # deterministic: the same data packs to the same bytes (and key)


def test_altered_bytes_or_reference_refused(staged):
    tmp, folds = staged
    ref = foreach.stage_data(folds)
    store = foreach.round_store()
    for bad, why in (({**ref, "bytes": ref["bytes"] + 1}, "does not match its reference"),
                     ({**ref, "sha256": "0" * 64}, "does not match its reference"),
                     ({**ref, "key": "f" * 40}, "not in the datastore"),
                     ({**ref, "key": "../../etc"}, "malformed"),
                     ({k: v for k, v in ref.items() if k != "folds"}, "malformed"),
                     ("not json", "not JSON")):
        with pytest.raises(foreach.DataRefError, match=why):
            foreach.fetch_data(bad, store)
    blob_path = tmp / "ds" / ".metaflow" / "OptimizeRoundFlow" / "data" / ref["key"][:2] / ref["key"]
    data = bytearray(blob_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed in the datastore
    os.chmod(blob_path, 0o600)
    blob_path.write_bytes(bytes(data))
    with pytest.raises(foreach.DataRefError, match="does not match its reference"):
        foreach.fetch_data(ref, store)
