"""deploy's pure parts: the alias-history replay, requirements read without running the solution, names."""
import os

import pytest

from loom_py.runtime.errors import UsageError
from loom_py.verbs import deploy


def mv(why, to, frm=None):
    return {"why": why, "to": to, "from": frm}


@pytest.mark.parametrize("moves,stack", [
    ([], []),
    ([mv("promote", 1)], [1]),
    ([mv("promote", 1), mv("promote", 2), mv("promote", 3)], [1, 2, 3]),
    ([mv("promote", 1), mv("promote", 2), mv("rollback", 1)], [1]),
    ([mv("promote", 1), mv("promote", 2), mv("promote", 3), mv("rollback", 2), mv("rollback", 1)], [1]),
    ([mv("promote", 1), mv("promote", 2), mv("rollback", 1), mv("promote", 4)], [1, 4]),
    ([mv("rollback", 1)], []),  # a rollback with nothing recorded pops nothing
])
def test_holders_replay(moves, stack):
    assert deploy.holders(moves) == stack


def test_requirements_read_imports_without_running_the_code():
    code = "import sklearn.ensemble\nfrom scipy import stats\nimport definitely_not_installed\nraise SystemExit('ran')\n"
    reqs = deploy._requirements(code)
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"mlflow-skinny", "scikit-learn", "scipy", "pandas", "numpy"} <= names
    assert all("==" in r for r in reqs)
    assert not any("definitely" in r for r in reqs)


@pytest.mark.parametrize("name,alias,ok", [
    ("churn", "champion", True), ("churn-model_2.1", "challenger", True), ("../x", "champion", False),
    ("churn", "latest", False), ("churn", "v3", False), ("churn", "has space", False), ("", "champion", True),
])
def test_names_and_aliases(name, alias, ok):
    if ok:
        deploy._check_name_alias({"name": name, "alias": alias})
    else:
        with pytest.raises(UsageError):
            deploy._check_name_alias({"name": name, "alias": alias})


def test_default_name_is_a_valid_model_name():
    n = deploy.default_name("my data (v2).csv", "churned")
    assert deploy.NAME_RE.match(n), n
    assert n.endswith("-churned") and " " not in n and "(" not in n


def test_recorded_holder_only_while_the_registry_file_is_unchanged(tmp_path, monkeypatch):
    """A plan takes the alias holder from Loom's record of its last move only while the SQLite registry has had
    no commit since (its change counter); a move outside Loom, any other write, or a journal beside the file
    sends it to the registry itself."""
    monkeypatch.setenv("LOOM_WORKSPACE_DIR", str(tmp_path))
    uri = "sqlite:///" + str(tmp_path / "mlflow" / "mlflow.db")
    c = deploy.client(uri)
    c.create_registered_model("m")
    run = c.create_run(c.create_experiment("e", artifact_location=(tmp_path / "a").as_uri()))
    v1, v2 = (int(c.create_model_version("m", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version)
              for _ in range(2))

    def loom_move(to, run_id):  # what apply does under its lock
        before = deploy.registry_stamp(uri)
        c.set_registered_model_alias("m", "champion", str(to))
        stamp = deploy._stamp_if_alone(before, deploy.registry_stamp(uri), 1)
        deploy.write_journal({"run": run_id, "state": "moved", "why": "promote", "registry": uri, "name": "m",
                              "alias": "champion", "from": None, "to": to, "when_ns": len(deploy.journals()),
                              "registry_stamp": stamp})
        return stamp

    assert loom_move(v1, "DeployFlow/1") is not None
    assert deploy.recorded_holder(uri, "m", "champion") == (True, v1)
    assert deploy.recorded_holder(uri, "m", "challenger") == (False, None)  # never moved by Loom
    real_client = deploy.client
    monkeypatch.setattr(deploy, "client", lambda u: (_ for _ in ()).throw(AssertionError("asked the registry")))
    assert deploy.current_holder(uri, "m", "champion", create=False, exact=False) == v1  # no MLflow call
    monkeypatch.setattr(deploy, "client", real_client)

    c.set_registered_model_alias("m", "champion", str(v2))  # moved outside Loom
    assert deploy.recorded_holder(uri, "m", "champion") == (False, None)
    assert deploy.current_holder(uri, "m", "champion", create=False, exact=False) == v2  # the registry's answer

    assert loom_move(v1, "DeployFlow/2") is not None
    c.set_model_version_tag("m", str(v1), "k", "v")  # any commit since the move
    assert deploy.recorded_holder(uri, "m", "champion") == (False, None)

    assert loom_move(v2, "DeployFlow/3") is not None
    assert deploy.recorded_holder(uri, "m", "champion") == (True, v2)
    db = str(tmp_path / "mlflow" / "mlflow.db")
    open(db + "-journal", "w").close()  # a write in progress (or a hot journal): the counter cannot vouch
    assert deploy.registry_stamp(uri) is None and deploy.recorded_holder(uri, "m", "champion") == (False, None)
    os.remove(db + "-journal")
    assert deploy.recorded_holder(uri, "m", "champion") == (True, v2)

    # a commit by someone else between the stamps: the move is not recorded as the file's last change
    before = deploy.registry_stamp(uri)
    c.set_model_version_tag("m", str(v2), "k", "v")
    c.set_registered_model_alias("m", "champion", str(v1))
    assert deploy._stamp_if_alone(before, deploy.registry_stamp(uri), 1) is None
    assert deploy.registry_stamp("http://127.0.0.1:5000") is None  # a server registry: always asked
