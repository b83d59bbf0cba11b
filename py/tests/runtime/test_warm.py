"""The warm image runs a task as a fresh interpreter would: the same argv, working directory, environment,
stdin/stdout/stderr and exit status. It refuses a task whose import-time environment differs (the task
then runs fresh), kills a task whose client was killed, passes SIGTERM on, and stops at once. The forked
launcher runs its script once it gets its arguments, and exits having done nothing on EOF.

Real processes throughout: the client is ``python -I -S warmexec.py`` exactly as Metaflow's runtime
starts it, and the task is a small script (tests/integration validate.test.ts runs real flows through it)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from loom_py.runtime import warm, warmexec

# the image forks and passes file descriptors over a Unix socket: where Python has neither os.fork nor
# socket.send_fds (Windows), Loom never starts it and these tests have nothing to run against
needs_fork = pytest.mark.skipif(not (hasattr(os, "fork") and hasattr(socket, "send_fds")),
                                reason="no os.fork / socket.send_fds on this platform: the warm image cannot exist here")
PY_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(warm.__file__))))

TASK = r'''
import json, os, signal, sys, time
import loom_py.runtime.warm as w
mode = os.environ.get("LOOM_TEST_MODE", "")
if mode == "sleep":
    print(os.getpid(), flush=True)
    time.sleep(60)
if mode == "trap":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(5))
    print("ready", flush=True)
    time.sleep(60)
if mode == "term":
    os.kill(os.getpid(), signal.SIGTERM)
if mode == "pickle":  # Metaflow pickles its ForeachFrame, a class it put on __main__ at import time
    import pickle, __main__
    print(type(pickle.loads(pickle.dumps(__main__.Carried((1,))))).__name__)
    sys.exit(0)
line = sys.stdin.readline()
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "x": os.environ.get("LOOM_TEST_X"), "served": w.SERVED,
                  "stdin": line.strip(), "omp": os.environ.get("OMP_NUM_THREADS")}))
sys.stderr.write("to stderr\n")
sys.exit(int(os.environ.get("LOOM_TEST_CODE", "0")))
'''


@pytest.fixture
def image(tmp_path, monkeypatch):
    """An image serving TASK (forked from this test process, which has loom_py imported)."""
    task = tmp_path / "task.py"
    task.write_text(TASK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (PY_DIR, os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("LOOM_WARM_LOG", str(tmp_path / "warm.log"))
    carried = type("Carried", (tuple,), {"__module__": "__main__"})  # as Metaflow's namedtuple_with_defaults does
    monkeypatch.setattr(sys.modules["__main__"], "Carried", carried, raising=False)
    img = warm.Image(str(task))
    TOKENS[img.path] = img.token
    img.fork()
    yield img, str(task), tmp_path
    img.stop()


TOKENS: dict = {}  # socket path -> the run's token (the bridge puts it in the launcher's environment)


def client(img_path, task, args, tmp_path, env=None, **kw):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    full = {**os.environ, warmexec.SOCKET_ENV: img_path, warmexec.TOKEN_ENV: TOKENS.get(img_path, ""), "LOOM_TEST_X": "42",
            **(env or {})}
    return [sys.executable, "-I", "-S", warmexec.__file__, task, *args], dict(env=full, cwd=str(work), **kw)


def run(img_path, task, tmp_path, env=None, args=("a", "b c")):
    cmd, kw = client(img_path, task, list(args), tmp_path, env)
    return subprocess.run(cmd, input="hello\n", capture_output=True, text=True, timeout=60, **kw)


def log(tmp_path):
    p = tmp_path / "warm.log"
    return p.read_text() if p.exists() else ""


@needs_fork
def test_a_served_task_sees_what_a_fresh_interpreter_would(image):
    img, task, tmp = image
    p = run(img.path, task, tmp, env={"LOOM_TEST_CODE": "3"})
    out = json.loads(p.stdout)
    assert p.returncode == 3 and "to stderr" in p.stderr
    assert out["served"], log(tmp)
    assert out == {"argv": [task, "a", "b c"], "cwd": str(tmp / "work"), "x": "42", "served": True, "stdin": "hello",
                   "omp": os.environ.get("OMP_NUM_THREADS")}
    assert "serve" in log(tmp)


@needs_fork
@pytest.mark.parametrize("how", ["no image", "import-time variable differs"])
def test_a_task_the_image_cannot_take_runs_fresh_with_the_same_result(image, how):
    img, task, tmp = image
    path, env = (str(tmp / "missing"), {}) if how == "no image" else (img.path, {"METAFLOW_ONLY_HERE": "1"})
    p = run(path, task, tmp, env={"LOOM_TEST_CODE": "3", **env})
    out = json.loads(p.stdout)
    assert p.returncode == 3 and "to stderr" in p.stderr
    assert out["served"] is False and out["argv"] == [task, "a", "b c"] and out["stdin"] == "hello"
    if how != "no image":
        assert "refuse" in log(tmp) and "METAFLOW_ONLY_HERE" in log(tmp)
    assert "fresh" in log(tmp)  # the client says why it ran the task itself


@needs_fork
def test_thread_counts_a_task_sets_are_applied_not_refused(image):
    img, task, tmp = image
    out = json.loads(run(img.path, task, tmp, env={"OMP_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}).stdout)
    assert out["served"] is True and out["omp"] == "1"


@needs_fork
def test_a_task_ended_by_a_signal_ends_its_client_the_same_way(image):
    img, task, tmp = image
    assert run(img.path, task, tmp, env={"LOOM_TEST_MODE": "term"}).returncode == -signal.SIGTERM


@needs_fork
def test_classes_libraries_put_on_main_before_the_fork_are_on_the_tasks_main(image):
    img, task, tmp = image
    p = run(img.path, task, tmp, env={"LOOM_TEST_MODE": "pickle"})
    assert p.returncode == 0 and p.stdout.strip() == "Carried" and "serve" in log(tmp)


@needs_fork
def test_sigterm_to_the_client_reaches_the_task(image):
    img, task, tmp = image
    cmd, kw = client(img.path, task, [], tmp, env={"LOOM_TEST_MODE": "trap"})
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 5


def _gone(pid, within=10.0):
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@needs_fork
def test_a_killed_client_takes_its_task_with_it(image):
    """Metaflow's runtime kills a task by killing the process it started: the task must not live on."""
    img, task, tmp = image
    cmd, kw = client(img.path, task, [], tmp, env={"LOOM_TEST_MODE": "sleep"})
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    task_pid = int(p.stdout.readline())
    assert task_pid != p.pid
    p.kill()
    p.wait(timeout=10)
    assert _gone(task_pid)


@needs_fork
def test_stop_ends_the_image_at_once(image):
    img, task, tmp = image
    pid = img.process.pid
    img.stop()
    assert _gone(pid, within=2) and not os.path.exists(img.path)


@needs_fork
def test_the_forked_launcher_runs_once_it_has_arguments_and_not_on_eof(tmp_path, monkeypatch):
    task = tmp_path / "task.py"
    task.write_text(TASK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (PY_DIR, os.environ.get("PYTHONPATH")) if p))
    w = warm.start(str(task), str(tmp_path), None)
    try:
        w.launcher.stdin.write(json.dumps(["x", "y"]) + "\n")
        w.launcher.stdin.close()
        out = w.launcher.stdout.read()
        assert w.launcher.wait(timeout=60) == 0
        got = json.loads(out.splitlines()[0])
        assert got["argv"] == [str(task), "x", "y"] and got["cwd"] == str(tmp_path) and got["served"] is False
        assert got["stdin"] == ""  # the launcher's stdin is /dev/null once it has its arguments
    finally:
        w.stop()
    w = warm.start(str(task), str(tmp_path), None)
    try:
        w.launcher.stdin.close()  # prepare refused the input
        assert w.launcher.stdout.read() == "" and w.launcher.wait(timeout=30) == 0
    finally:
        w.stop()


@pytest.mark.parametrize("src, expect", [
    ('LOOM_WARM = ("pandas", "loom_py.verbs.validate:warm_imports")\n', ["pandas", "loom_py.verbs.validate:warm_imports"]),
    ('LOOM_WARM = ["a", 3, "b"]\n', ["a", "b"]),
    ('LOOM_WARM = some_call()\n', []),
    ('def f():\n    LOOM_WARM = ("hidden",)\n', []),
    ("x = (\n", []),
])
def test_declared_reads_the_flow_files_tuple_without_running_it(tmp_path, src, expect):
    f = tmp_path / "flow.py"
    f.write_text(src)
    assert warm.declared(str(f)) == expect


@pytest.mark.parametrize("image_env, task_env, bad", [
    ({"METAFLOW_USER": "a"}, {"METAFLOW_USER": "a", "METAFLOW_RUN_ID": "7", "PYTHONUNBUFFERED": "x"}, None),
    ({"METAFLOW_USER": "a"}, {"METAFLOW_USER": "b"}, "METAFLOW_USER"),
    ({}, {"PYTHONPATH": "/x"}, "PYTHONPATH"),
    ({}, {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, None),      # applied after the fork
    ({"HOME": "/a"}, {"HOME": "/b", "LOOM_TMP": "/t"}, None),          # read when used, not at import
    ({"SKLEARN_ASSUME_FINITE": "1"}, {}, "SKLEARN_ASSUME_FINITE"),
])
def test_env_mismatch(image_env, task_env, bad):
    assert warm.env_mismatch(image_env, task_env) == bad


@pytest.mark.parametrize("token", ["", "0" * 32])
def test_a_task_without_the_runs_token_is_refused_and_runs_fresh(image, token):
    """The image serves only a client showing this run's token: anything else that finds the socket is
    refused (the task then runs fresh, as this same user could have started it anyway)."""
    img, task, tmp_path = image
    r = run(img.path, task, tmp_path, env={warmexec.TOKEN_ENV: token})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["served"] is False
    assert "refuse a task without the run's token" in log(tmp_path)


def test_the_socket_directory_is_private(image):
    img, _task, _tmp = image
    st = os.stat(os.path.dirname(img.path))
    assert st.st_mode & 0o777 == 0o700
