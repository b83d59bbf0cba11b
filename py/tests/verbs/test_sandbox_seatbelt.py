"""macOS's sandbox (sandbox-exec + the profile seatbelt.py writes), checked on Linux: there is no Mac here.

The profile text is evaluated by a small reader of the SBPL subset it uses (last matching rule wins, ``subpath``
/ ``literal`` filters OR'ed within a rule), so the tests check what the policy allows, not only which strings it
contains. The selection (``os_sandbox``) and the launch are checked with a stand-in for /usr/bin/sandbox-exec
that records the profile and runs the program: untested against the real Seatbelt.
"""

from __future__ import annotations

import os
import stat
import sys

import pytest

from loom_py.verbs.optimize import sandbox, seatbelt


def _tokens(text: str):
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "()":
            yield c
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while text[j] != '"':
                if text[j] == "\\":
                    j += 1
                buf.append(text[j])
                j += 1
            yield ("str", "".join(buf))
            i = j + 1
        elif c.isspace():
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '()";':
                j += 1
            yield text[i:j]
            i = j


def parse(text: str) -> list:
    stack = [[]]
    for t in _tokens(text):
        if t == "(":
            stack.append([])
        elif t == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(t)
    assert len(stack) == 1, "unbalanced parentheses"
    return stack[0]


def decide(text: str, op: str, path: str | None = None, *, is_dir: bool = False) -> str:
    """'allow' | 'deny' for ``op`` on ``path`` under the profile: the last matching rule wins."""
    verdict = None
    for rule in parse(text):
        if not isinstance(rule, list) or rule[0] not in ("allow", "deny"):
            continue
        verb, rop, filters = rule[0], rule[1], rule[2:]
        if not (rop == "default" or rop == op or (rop.endswith("*") and op.startswith(rop[:-1]))):
            continue
        if rop == "default" or not filters:
            verdict = verb
            continue
        for f in filters:
            kind = f[0]
            if kind == "subpath" and path is not None and (path == f[1][1] or path.startswith(f[1][1].rstrip("/") + "/")):
                verdict = verb
            elif kind == "literal" and path is not None and path == f[1][1]:
                verdict = verb
            elif kind == "vnode-type" and is_dir and f[1] == "DIRECTORY":
                verdict = verb
    return verdict or "deny"


WORK = "/private/var/folders/ab/cd/T/loom-sbx-1/c-2"
VENV = "/Users/ann/.local/share/loom/venv"
P = dict(work=WORK, executables=[f"{VENV}/bin/python", "/opt/homebrew/Cellar/python@3.11/bin/python3.11"],
         python=[VENV, "/opt/homebrew/Cellar/python@3.11"], boot=["/Users/ann/src/loom/py/loom_py/verbs/optimize/sandbox_boot.py"],
         deny_read=["/Users", "/Volumes", "/private/tmp", "/private/var/tmp", "/Users/ann", "/private/var/folders/ab/cd/T",
                    "/Users/ann/.local/share/loom", "/Users/ann/proj"])


@pytest.mark.parametrize("op,path,want", [
    ("file-read-data", "/usr/lib/libSystem.B.dylib", "allow"),          # the system
    ("file-read-data", "/System/Library/Frameworks/Accelerate.framework/x", "allow"),
    ("file-read-data", f"{VENV}/lib/python3.11/site-packages/sklearn/__init__.py", "allow"),  # Python, inside LOOM_HOME
    ("file-read-data", P["boot"][0], "allow"),                             # the boot script, inside a home
    ("file-read-data", "/Users/ann/src/loom/py/loom_py/verbs/optimize/sandbox.py", "deny"),  # nothing else of it
    ("file-read-data", f"{WORK}/train.arrow", "allow"),                   # its own staged copies
    ("file-read-data", "/Users/ann/proj/.loom/IngestDataset/1/data/blob", "deny"),   # the datastore
    ("file-read-data", "/Users/ann/proj/.loom/seal.json", "deny"),                    # the seal
    ("file-read-data", "/Users/ann/.ssh/id_rsa", "deny"),                             # the home directory
    ("file-read-data", "/Users/ann/.local/share/loom/run/warm.sock", "deny"),         # LOOM_HOME's runtime
    ("file-read-data", "/private/var/folders/ab/cd/T/loom-sbx-1/c-3/train.arrow", "deny"),  # another candidate
    ("file-read-data", "/private/tmp/loom-warm-x/s", "deny"),
    ("file-read-data", "/Users/bob/notes.txt", "deny"),                   # anyone's home
    ("file-read-metadata", "/Users/ann", "allow"),                         # stat of a directory (path resolution)
    ("file-write-data", f"{WORK}/predictions.npz", "allow"),             # writes: its own directory
    ("file-write-create", f"{WORK}/tmp/x", "allow"),
    ("file-write-data", "/dev/null", "allow"),
    ("file-write-data", f"{VENV}/lib/python3.11/site-packages/evil.pth", "deny"),
    ("file-write-data", "/Users/ann/proj/.loom/IngestDataset/1/data/blob", "deny"),
    ("file-write-unlink", "/private/var/folders/ab/cd/T/loom-sbx-1/c-3/predictions.npz", "deny"),
    ("file-write-create", "/private/tmp/attack", "deny"),
    ("file-write-data", "/usr/local/lib/x", "deny"),
    ("network-outbound", None, "deny"), ("network-outbound", "/private/tmp/loom-warm-x/s", "deny"),
    ("network-bind", None, "deny"), ("network-inbound", None, "deny"),
    ("process-fork", None, "deny"),
    ("process-exec", "/bin/sh", "deny"), ("process-exec", f"{VENV}/bin/python", "allow"),
    ("ipc-posix-shm-write-create", None, "deny"), ("ipc-posix-sem", None, "allow"),  # one operation for semaphores
    ("mach-lookup", None, "deny"),  # only the named services (no path filter matches a bare lookup)
])
def test_the_profile_allows_exactly_what_a_candidate_needs(op, path, want):
    text = seatbelt.profile(**P)
    assert decide(text, op, path, is_dir=op == "file-read-metadata") == want, (op, path)


def test_the_profile_is_well_formed_and_ordered():
    text = seatbelt.profile(**P)
    rules = parse(text)
    assert rules[0] == ["version", "1"] and rules[1] == ["deny", "default"]
    heads = [(r[0], r[1]) for r in rules]
    # reads: allow all, then deny the private places, then re-allow inside them (last match wins)
    assert heads.index(("allow", "file-read*")) < heads.index(("deny", "file-read*")) < len(heads) - 1 - heads[::-1].index(("allow", "file-read*"))
    # network, shared memory and fork are denied after every allow
    last_allow = max(i for i, h in enumerate(heads) if h[0] == "allow")
    for h in (("deny", "network*"), ("deny", "ipc-posix-shm*"), ("deny", "process-fork")):
        assert heads.index(h) > last_allow
    assert not any(h[0] == "allow" and h[1].startswith(("network", "process-fork", "ipc-posix-shm")) for h in heads)
    writes = [r for r in rules if r[:2] == ["allow", "file-write*"]]
    assert len(writes) == 1 and writes[0][2:] == [["subpath", ("str", WORK)], ["literal", ("str", "/dev/null")]]


@pytest.mark.parametrize("path,ok", [
    ('/Users/a "quoted"/x', True), ("/Users/back\\slash", True), ("/Users/ünï", True),
    ("relative/path", False), ("/Users/new\nline", False), ("/Users/nul\x00", False), ("/Users/esc\x1b[2J", False),
])
def test_paths_are_quoted_or_refused(path, ok):
    if not ok:
        with pytest.raises(ValueError):
            seatbelt.profile(**dict(P, work=path))
        return
    text = seatbelt.profile(**dict(P, work=path))
    assert decide(text, "file-write-data", path + "/f") == "allow"  # the quoted path reads back as itself
    assert decide(text, "file-write-data", path + "x/f") == "deny"


def test_loom_gathers_the_private_paths_from_its_environment(tmp_path, monkeypatch):
    ws = tmp_path / "proj"
    (ws / ".loom").mkdir(parents=True)
    home = tmp_path / "home"
    (home / ".local/share/loom").mkdir(parents=True)
    monkeypatch.setenv("LOOM_WORKSPACE_DIR", str(ws / ".loom"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LOOM_HOME", str(home / ".local/share/loom"))
    work = tmp_path / "box" / "c-1"
    work.mkdir(parents=True)
    argv = sandbox.seatbelt_command(str(work))
    assert argv[:2] == [sandbox.SANDBOX_EXEC, "-p"]
    text = argv[2]
    for p in (ws / ".loom" / "seal.json", ws / "data.csv", home / ".ssh" / "id_rsa", home / ".local/share/loom/run/sock"):
        assert decide(text, "file-read-data", os.path.realpath(p)) == "deny", p
    assert decide(text, "file-read-data", os.path.realpath(sys.prefix) + "/lib/x.py") == "allow"
    assert decide(text, "file-read-data", os.path.realpath(sandbox.BOOT)) == "allow"
    assert decide(text, "file-write-data", os.path.realpath(work) + "/model.pkl") == "allow"
    assert decide(text, "file-write-data", os.path.realpath(ws / ".loom" / "x")) == "deny"


@pytest.fixture
def fake_mac(tmp_path, monkeypatch):
    """A stand-in for /usr/bin/sandbox-exec (records the profile, runs the program) and a 'darwin' platform."""
    log = tmp_path / "profiles"
    fake = tmp_path / "sandbox-exec"
    fake.write_text(f'#!/bin/sh\n[ "$1" = "-p" ] || exit 64\nprintf "%s\\n====\\n" "$2" >> "{log}"\nshift 2\nexec "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sandbox, "SANDBOX_EXEC", str(fake))
    monkeypatch.setattr(sandbox.sys, "platform", "darwin")
    monkeypatch.setattr(sandbox, "_bwrap_works", lambda: False)
    sandbox._seatbelt_works.cache_clear()
    yield log
    sandbox._seatbelt_works.cache_clear()


def test_on_macos_sandbox_exec_is_chosen_and_runs_each_candidate(fake_mac, tmp_path):
    import pandas as pd

    assert sandbox.os_sandbox() == "sandbox-exec"
    assert sandbox.start_zygote() is None  # a forked child could not enter the profile: one process per candidate
    iso = sandbox.isolation()
    assert iso["os_sandbox"] == "sandbox-exec" and iso["namespaces"] == [] and "copied" in iso["candidate_dir"]
    data = tmp_path / "data"
    tr = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5], "target": [0, 1, 0, 1, 0, 1]})
    sandbox.stage(str(data), tr, tr[["x"]], tr[["x"]], {"target": "target", "task": "classification"})
    code = ("import os\nprint('HERE', os.getcwd(), sorted(os.listdir('.')))\n"
            "from sklearn.dummy import DummyClassifier\ndef make_model():\n    return DummyClassifier()\n")
    res = sandbox.run_candidate(code, str(tmp_path / "out"), str(data), timeout=60)
    assert res["error"] is None and res["launcher"] == "process", res
    assert "'train.arrow'" in res["output"]  # a copy in its own directory (no bind mounts on macOS)
    profiles = fake_mac.read_text().split("====\n")
    cand_dir = res["output"].split("HERE ", 1)[1].split(" ", 1)[0]
    assert any(f'(subpath "{cand_dir}")' in p for p in profiles), "the candidate ran under a profile for its directory"
    assert not os.path.exists(cand_dir)


def test_without_sandbox_exec_there_is_no_os_sandbox_and_the_hint_says_so(fake_mac, monkeypatch):
    monkeypatch.setattr(sandbox, "SANDBOX_EXEC", "/nonexistent/sandbox-exec")
    sandbox._seatbelt_works.cache_clear()
    assert sandbox.os_sandbox() is None  # so LLM proposers refuse (flowside), unless --unsafe-no-sandbox
    assert "sandbox-exec" in sandbox.install_hint() and "missing" in sandbox.install_hint()
