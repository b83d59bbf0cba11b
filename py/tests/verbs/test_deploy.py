"""deploy's pure parts: the alias-history replay, requirements read without running the solution, names."""
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
