"""runtime.sizing.size_for: @resources from the data's size (rows x columns, stored bytes), floors, caps and
overrides, as a table of cases worked out by hand from the rule in the module's docstring."""
import pytest

from loom_py.runtime.sizing import CAP, DEFAULTS, FLOOR, describe, size_for

CASES = [
    # kind, size and concurrency, env, (cpu, memory MiB), why
    ("validate", dict(rows=1000, columns=10, stored_bytes=50_000), {}, (1, 4096),
     "small data: 1024 + 8 x 0.19 MiB rounds to 1280, below the 4096 floor (Metaflow's own default)"),
    ("validate", dict(rows=2_000_000, columns=50, stored_bytes=100_000_000), {}, (2, 7168),
     "1e8 cells = 763 MiB frame (cells x 8 beats bytes x 4): 1024 + 8 x 763 -> 7168; 2 cpu from 1e6 cells"),
    ("validate", dict(rows=20_000_000, columns=100, stored_bytes=None), {}, (2, CAP[1]),
     "a 15 GiB frame x 8 is capped at 60 GiB"),
    ("optimize", dict(rows=5000, columns=20, stored_bytes=400_000, parallel=2, folds=5), {}, (10, 4096),
     "local pool: 2 x 5 fits at once -> 10 cpu; frame from stored bytes (1.5 MiB), memory at the floor"),
    ("optimize", dict(rows=5000, columns=20, stored_bytes=400_000, parallel=2, folds=5, executor="metaflow"), {}, (1, 4096),
     "metaflow executor: the fits run in the round's tasks, the search's own step needs one core"),
    ("optimize", dict(rows=1_000_000, columns=100, parallel=4, folds=1), {}, (4, 13824),
     "763 MiB frame x (4 + 3 x 4) + 1536 = 13743 -> 13824"),
    ("round", dict(stored_bytes=50_000_000, folds=5), {}, (5, 4096),
     "one candidate's 5 folds at once: 1024 + 15 x 191 MiB = 3885 -> 4096"),
    ("validate", {}, {}, DEFAULTS["validate"], "size unknown: decision 0900's static size"),
    ("optimize", dict(rows=None, columns=None, stored_bytes=0), {}, DEFAULTS["optimize"], "size unknown"),
    ("optimize", dict(rows=5000, columns=20, parallel=32, folds=5), {}, (CAP[0], 4096), "160 fits capped at 16 cpu"),
    ("optimize", dict(rows=5000, columns=20, parallel=32, folds=5), {"LOOM_RESOURCES_MAX_CPU": "8"}, (8, 4096),
     "the cap is configurable"),
    ("validate", dict(rows=1000, columns=10), {"LOOM_RESOURCES_MIN_MEMORY_MB": "6144", "LOOM_RESOURCES_MIN_CPU": "2"}, (2, 6144),
     "so is the floor"),
    ("validate", dict(rows=20_000_000, columns=100), {"LOOM_RESOURCES_MAX_MEMORY_MB": "131072"}, (2, 123136),
     "a bigger cap lets the estimate through: 1024 + 8 x 15259 = 123094 -> 123136"),
    ("validate", dict(rows=1000, columns=10), {"LOOM_RESOURCES_CPU": "3", "LOOM_RESOURCES_MEMORY_MB": "65536"}, (3, 65536),
     "LOOM_RESOURCES_CPU / _MEMORY_MB pin the values, above the cap too"),
    ("validate", dict(rows=1000, columns=10), {"LOOM_RESOURCES_MEMORY_MB": "lots"}, (1, 4096), "an unreadable override is ignored"),
]


@pytest.mark.parametrize("kind,size,env,want,why", CASES, ids=[c[4][:40] for c in CASES])
def test_size_for_table(kind, size, env, want, why):
    r = size_for(kind, env=env, **size)
    assert (r["cpu"], r["memory"]) == want, why
    assert r["basis"]["rows"] == size.get("rows") and r["rule"]
    assert describe(r).startswith(f"{want[0]} cpu, {want[1]} MiB (")


def test_memory_grows_with_the_data_and_stays_within_floor_and_cap():
    last = 0
    for rows in (100, 10_000, 100_000, 1_000_000, 5_000_000, 50_000_000):
        m = size_for("validate", rows=rows, columns=40, env={})["memory"]
        assert FLOOR[1] <= m <= CAP[1] and m % 256 == 0
        assert m >= last
        last = m
    assert last == CAP[1] and size_for("validate", rows=100, columns=40, env={})["memory"] == FLOOR[1]


def test_stored_bytes_count_when_they_say_more_than_the_cells():
    """A few wide string columns: the Parquet bytes x 4 exceed rows x columns x 8."""
    cells_only = size_for("validate", rows=1_000_000, columns=4, env={})
    with_bytes = size_for("validate", rows=1_000_000, columns=4, stored_bytes=500_000_000, env={})
    assert with_bytes["memory"] > cells_only["memory"]
    assert with_bytes["basis"]["frame_mb"] == pytest.approx(500_000_000 * 4 / 2**20, rel=1e-3)
