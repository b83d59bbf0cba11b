"""The warm image: Metaflow's launcher and tasks forked from processes that have already done their imports.

Without it, each process of a run is a fresh interpreter. The launcher (``python flow.py run``) and every
task (``python flow.py step NAME ...``) import Metaflow (~0.25 s each here), and a modelling step then
imports pandas and scikit-learn (~1.2-1.7 s) before it does any work. The bridge imports Metaflow, pandas,
pyarrow and the verb's prepare module once, at the start of ``loom <verb>``. It then forks two processes
before prepare runs:

* the **launcher**. It waits for the run's arguments on a pipe, like the old pre-started launcher. When
  prepare refuses the input, it gets EOF and exits with nothing written.
* the **image**. It imports what the flow declares in ``LOOM_WARM`` (a module-level tuple in the flow file
  of ``"module"`` or ``"module:function"`` strings, read with ``ast`` without running the file). Then it
  serves a Unix socket. The launcher's entrypoint for tasks is ``loom_py/runtime/warmexec.py`` (see
  ``flowkit.main``). That script sends each task's argv, environment, working directory, standard
  streams and the run's token to the image (the socket sits in a private 0700 directory; the image serves
  only a peer of its own uid, by SO_PEERCRED, showing the token; a sandboxed candidate cannot even see the
  host's temp directory). The image forks a supervisor, which forks the task and reports its exit status.
  The task takes over those streams, that directory and that environment, and runs the flow file as
  ``__main__``. The step command and the datastore writes are Metaflow's own code, as in a fresh
  interpreter; only how the process was made differs.

A task is refused, and then runs in a fresh interpreter, when its environment differs from the image's in
a variable that a preloaded module may have read at import time (``METAFLOW_*``, ``PYTHON*``, thread
counts). The variables Metaflow's runtime sets for every task (``METAFLOW_RUN_ID``, ``PYTHONUNBUFFERED``)
do not count; the task rebuilds its standard streams from its own environment.

Forking happens before any thread starts: the bridge's client-warming thread starts later, and the image
and supervisors never start threads. On by default on Linux; ``LOOM_WARM=0`` turns it off. ``LOOM_WARM=1``
turns it on elsewhere, where forking after some macOS frameworks have loaded can crash the child. The image
exits when the bridge closes its lifeline pipe or exits. Measured in ``bench/validate_bench.py``;
decision 0204.
"""

from __future__ import annotations

import ast
import hmac
import importlib
import io
import json
import os
import secrets
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

from loom_py.runtime.warmexec import SOCKET_ENV, TOKEN_ENV, recv_msg

SERVED = False  # True in a task the image forked (flows and tests can tell how they were started)

# what the bridge imports before it forks: the launcher needs Metaflow's runtime, prepare reads data objects
BRIDGE_IMPORTS = ("metaflow", "metaflow.cli", "metaflow.runtime", "metaflow.task", "metaflow.plugins.cards",
                  "loom_py.runtime.flowkit", "loom_py.runtime.data", "pandas", "pyarrow.parquet")
# variables a preloaded module may have read at import time: a task whose value differs runs fresh
_IMPORT_TIME_PREFIXES = ("METAFLOW_", "PYTHON", "OMP_", "OPENBLAS_", "MKL_", "NUMEXPR_", "SKLEARN_", "ARROW_",
                         "LD_", "MPL")
_PER_TASK = {"METAFLOW_RUN_ID", "PYTHONUNBUFFERED"}  # set by Metaflow's runtime for every task
# thread counts a task may set (flowkit.pin_threads does) and a child applies after the fork (threadpoolctl)
_THREADS = {"OMP_NUM_THREADS": "openmp", "OPENBLAS_NUM_THREADS": "blas", "MKL_NUM_THREADS": "blas",
            "NUMEXPR_NUM_THREADS": "numexpr"}


def enabled() -> bool:
    from loom_py.runtime.sidecar import remote_compute

    v = os.environ.get("LOOM_WARM", "").strip().lower()
    if v in ("0", "false", "no", "off"):
        return False
    if remote_compute():  # the tasks run in remote containers: there is nothing local to fork them from
        return False
    if not hasattr(socket, "send_fds") or not hasattr(os, "fork"):
        return False
    return v in ("1", "true", "yes", "on") or sys.platform.startswith("linux")


def declared(flow_file: str) -> list[str]:
    """The flow file's ``LOOM_WARM`` tuple (module-level, literal strings), without running the file."""
    try:
        with open(flow_file, encoding="utf-8") as f:
            tree = ast.parse(f.read(), flow_file)
    except (OSError, SyntaxError, ValueError):
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "LOOM_WARM" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            return [v for v in value if isinstance(v, str)] if isinstance(value, (tuple, list)) else []
    return []


def preload(items) -> list[str]:
    """Import each ``module`` or call each ``module:function``; return the ones that failed. A failure
    is skipped, not fatal: the task then imports the module itself, as a fresh interpreter would, and
    reports any real error."""
    failed = []
    for item in items:
        mod, _, fn = item.partition(":")
        try:
            m = importlib.import_module(mod)
            if fn:
                getattr(m, fn)()
        except Exception:
            failed.append(item)
    return failed


def env_mismatch(image_env: dict, task_env: dict) -> str | None:
    """The first variable that makes the image unfit for a task, or None."""
    for k in sorted(set(image_env) | set(task_env)):
        if k in _PER_TASK or k in _THREADS or not k.startswith(_IMPORT_TIME_PREFIXES):
            continue
        if image_env.get(k) != task_env.get(k):
            return k
    return None


# ---- the bridge's side ------------------------------------------------------------------------------

class Forked:
    """A forked child with Popen's small surface the bridge uses (stdin, stdout, wait, kill)."""

    def __init__(self, pid: int, stdin=None, stdout=None):
        self.pid, self.stdin, self.stdout, self.returncode = pid, stdin, stdout, None

    def poll(self):
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            if deadline is None:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            elif self.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"process {self.pid} still running")
                time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass


class Image:
    """The image's socket (bound at once, so tasks may connect while it imports) and, after ``fork()``,
    the image process. ``stop()`` ends it and removes the socket's private directory."""

    def __init__(self, flow_file: str):
        self.flow_file = flow_file
        self.token = secrets.token_hex(16)  # a task must show it (warmexec sends it from LOOM_WARM_TOKEN)
        self._tmpdir = tempfile.mkdtemp(prefix="loom-warm-")  # mode 0700: only this user can hand it tasks
        self.path = os.path.join(self._tmpdir, "s")
        self.process: Forked | None = None
        self._lifeline = -1
        try:
            if len(self.path.encode()) > 100:  # AF_UNIX paths are limited to ~108 bytes
                raise OSError("socket path too long")
            self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._srv.bind(self.path)
            self._srv.listen(64)  # tasks that arrive while the image imports wait in the backlog
        except OSError:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            raise

    def fork(self, close=()) -> None:
        """Fork the image: it imports what the flow declares, then serves tasks until ``stop()``.
        ``close``: descriptors of the bridge's the image must not hold (the launcher's pipes)."""
        lifeline_r, lifeline_w = os.pipe()
        for f in (sys.stdout, sys.stderr):
            f.flush()  # nothing buffered may be written twice
        pid = os.fork()
        if pid == 0:
            try:
                os.close(lifeline_w)
                _isolate(close)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the tasks; the lifeline ends the image
                _serve(self._srv, self.flow_file, lifeline_r, self.token)
            finally:
                os._exit(0)
        os.close(lifeline_r)
        self._srv.close()
        self._lifeline, self.process = lifeline_w, Forked(pid)

    def fileno(self) -> int:
        return self._srv.fileno()

    def stop(self) -> None:
        """End the image at once and reap it; remove the socket's directory. Nothing is lost: the bridge
        stops it after the launcher has exited (every task has), or when prepare refused the input (no task
        was started), and a task in flight belongs to its own supervisor process, not to the image."""
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
            self.process.kill()
            self.process.wait()
        elif self.process is None:
            self._srv.close()
        shutil.rmtree(self._tmpdir, ignore_errors=True)


class Warm:
    """The run's launcher (waiting for its arguments) and image (serving tasks), forked from the bridge."""

    def __init__(self, launcher: Forked, image: Image):
        self.launcher, self.image = launcher, image

    def stop(self) -> None:
        self.image.stop()


def start(flow_file: str, cwd: str | None, prepare_ref: str | None = None) -> Warm | None:
    """Import once, then fork the launcher and the image. Call before prepare and before any thread
    starts. None when the socket cannot be made (the bridge then starts a fresh launcher)."""
    try:
        image = Image(flow_file)
    except OSError:
        return None
    preload(BRIDGE_IMPORTS + ((prepare_ref.partition(":")[0],) if prepare_ref else ()))
    for f in (sys.stdout, sys.stderr):
        f.flush()  # nothing buffered may be written twice by a child
    # the launcher first: it must not hold the image's lifeline (it closes every inherited descriptor)
    launcher = _fork_launcher(flow_file, cwd, {**os.environ, SOCKET_ENV: image.path, TOKEN_ENV: image.token},
                              close=(image.fileno(),))
    image.fork(close=(launcher.stdin.fileno(), launcher.stdout.fileno()))
    return Warm(launcher, image)


def _fork_launcher(flow_file: str, cwd: str | None, env: dict, close=()) -> Forked:
    """A child that reads one line (the run's CLI arguments as JSON) and becomes ``python FLOW_FILE ARGS``
    with stdout and stderr on one pipe to the bridge; EOF instead of a line: it exits, having done nothing."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            _close((in_r, in_w, out_r, out_w) + tuple(close))
            line = io.open(0, "rb", closefd=False).readline()
            if line.strip():
                fd = os.open(os.devnull, os.O_RDONLY)
                os.dup2(fd, 0)
                os.close(fd)
                _run_script([flow_file] + json.loads(line), cwd or os.getcwd(), env)  # does not return
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(in_r)
    os.close(out_w)
    return Forked(pid, stdin=io.open(in_w, "w", buffering=1), stdout=io.open(out_r, "r", buffering=1))


def _close(fds) -> None:
    """Close the descriptors of the bridge's that a child must not hold. Only these: libraries own other
    inherited descriptors (pyarrow's self-pipe, for one) and abort in their fork handlers without them."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _isolate(close) -> None:
    """The image's standard streams go to /dev/null (the CLI waits for the bridge's to reach EOF), and it
    holds none of the launcher's pipes."""
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    os.close(fd)
    _close(close)
    _std_streams({})


# ---- the image's side -------------------------------------------------------------------------------

def _serve(srv: socket.socket, flow_file: str, lifeline: int, token: str = "") -> None:
    """Preload the flow's declared imports, then fork a supervisor per connection until the lifeline ends."""
    preload(declared(flow_file))
    image_env = dict(os.environ)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    while True:
        ready, _, _ = select.select([srv, lifeline], [], [])
        if lifeline in ready and not os.read(lifeline, 4096):
            return
        if srv in ready:
            conn, _ = srv.accept()
            if os.fork() == 0:
                code = 1
                try:
                    srv.close()
                    os.close(lifeline)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    supervise(conn, image_env, token)
                    code = 0
                except BaseException as e:  # the client runs the task fresh; say why in the log
                    _log(image_env, f"error {type(e).__name__}: {e}")
                finally:
                    os._exit(code)
            conn.close()


def peer_uid(conn: socket.socket) -> int | None:
    """The connecting process's uid (SO_PEERCRED), or None where the platform cannot tell."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def supervise(conn: socket.socket, image_env: dict, token: str = "") -> None:
    """Receive one task, fork it, report ``pid N`` then ``exit CODE``; kill it if the client goes away.
    Only a process of this user (SO_PEERCRED) that shows the run's token is served."""
    uid = peer_uid(conn)
    if uid is not None and uid != os.getuid():
        conn.sendall(b"refuse peer\n")
        _log(image_env, f"refuse a connection from uid {uid}")
        return
    req, fds = recv_msg(conn)
    if token and not hmac.compare_digest(str(req.get("token") or ""), token):
        for fd in fds:
            os.close(fd)
        conn.sendall(b"refuse token\n")
        _log(image_env, "refuse a task without the run's token")
        return
    bad = env_mismatch(image_env, req.get("env") or {})
    if bad or len(fds) != len(req.get("fds") or []):
        for fd in fds:
            os.close(fd)
        conn.sendall(f"refuse {bad or 'fds'}\n".encode())
        _log(image_env, f"refuse {_what(req.get('argv') or [])} ({bad or 'fds'})")
        return
    _log(image_env, f"serve {_what(req['argv'])}")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            conn.close()
            for target, fd in zip(req["fds"], fds):
                if fd != target:
                    os.dup2(fd, target)
                    os.close(fd)
            for fd in {0, 1, 2} - set(req["fds"]):
                os.close(fd)
            _run_script(list(req["argv"]), req["cwd"], req["env"], served=True)  # does not return
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"pid {pid}\n".encode())
    conn.sendall(f"exit {wait_or_kill(pid, conn)}\n".encode())


def _what(argv: list[str]) -> str:
    """'step start', 'card create', ... for the log."""
    for cmd in ("step", "card"):
        if cmd in argv:
            i = argv.index(cmd)
            return " ".join(argv[i:i + 2])
    return " ".join(argv[1:3])


def _log(env: dict, line: str) -> None:
    """With LOOM_WARM_LOG set, one line per task served or refused (diagnostics and tests)."""
    path = env.get("LOOM_WARM_LOG")
    if path:
        try:
            with open(path, "a") as f:
                f.write(f"{time.time():.3f} {line}\n")
        except OSError:
            pass


def route_card_renders(warmexec_path: str) -> None:
    """In a task the image forked. Metaflow renders the task's card in a subprocess: ``sys.executable
    sys.argv[0] ... card create ...``, which costs ~0.3 s of Python and Metaflow start-up. This sends that
    command through warmexec too, so the image forks it. Metaflow's card code runs unchanged; only the
    process is made differently. Metaflow's version is pinned (py/requirements.txt). A command of any
    other shape passes through untouched."""
    try:
        from metaflow.plugins.cards.card_creator import CardCreator
    except Exception:
        return
    original = CardCreator._run_command
    if getattr(original, "_loom_routed", False):
        return

    def _run_command(self, cmd, *args, **kwargs):
        if list(cmd[:2]) == [sys.executable, sys.argv[0]] and "card" in cmd:
            cmd = [sys.executable, "-I", "-S", warmexec_path] + list(cmd[1:])
        return original(self, cmd, *args, **kwargs)

    _run_command._loom_routed = True
    CardCreator._run_command = _run_command


def wait_or_kill(pid: int, conn: socket.socket) -> int:
    """The task's exit code (-N for signal N). If the client's connection closes first (the runtime killed
    the client), the task is killed: the runtime must not be left with a task it cannot see."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    client_gone = False
    while True:
        watch = ([pidfd] if pidfd is not None else []) + ([] if client_gone else [conn])
        timeout = None if pidfd is not None else 0.05
        ready, _, _ = select.select(watch, [], [], timeout) if watch else ([], [], [])
        if conn in ready and not client_gone:
            try:
                gone = not conn.recv(1)
            except OSError:
                gone = True
            if gone:
                client_gone = True
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        done, status = os.waitpid(pid, 0 if client_gone else os.WNOHANG)
        if done:
            if pidfd is not None:
                os.close(pidfd)
            return os.waitstatus_to_exitcode(status)


# ---- the process a launcher or task becomes ---------------------------------------------------------

def _std_streams(env: dict) -> None:
    """Rebuild sys.std* on fds 0-2 as a fresh interpreter with this environment would: unbuffered when
    it says PYTHONUNBUFFERED (Metaflow sets it for every task), stderr line-buffered."""
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    enc = (env.get("PYTHONIOENCODING") or "").split(":")[0] or getattr(sys.__stdout__, "encoding", None) or "utf-8"

    def writer(fd: int, errors: str):
        raw = io.FileIO(fd, "w", closefd=False)
        binary = raw if unbuffered else io.BufferedWriter(raw)
        return io.TextIOWrapper(binary, encoding=enc, errors=errors, write_through=unbuffered,
                                line_buffering=fd == 2 or raw.isatty())

    try:
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=enc)
    except (OSError, ValueError):
        sys.stdin = sys.__stdin__ = None
    sys.stdout = sys.__stdout__ = writer(1, "strict")
    sys.stderr = sys.__stderr__ = writer(2, "backslashreplace")


def _apply_thread_limits(env: dict) -> None:
    """The thread counts this environment asks for, applied to the thread pools already loaded (a fresh
    interpreter would have read them when it loaded BLAS and OpenMP)."""
    wanted = {}
    for var, api in _THREADS.items():
        try:
            if env.get(var):
                wanted[api] = int(env[var])
        except ValueError:
            continue
    if "numexpr" in wanted and "numexpr" in sys.modules:
        try:
            sys.modules["numexpr"].set_num_threads(wanted["numexpr"])
        except Exception:
            pass
    wanted.pop("numexpr", None)
    if not wanted or "numpy" not in sys.modules:  # nothing loaded has read them yet
        return
    try:
        from threadpoolctl import threadpool_limits

        for api, n in wanted.items():
            threadpool_limits(limits=n, user_api=api)
    except Exception:
        pass


def _run_script(argv: list[str], cwd: str, env: dict, served: bool = False) -> None:
    """Become ``python argv[0] argv[1:]`` in ``cwd`` with ``env``, on the current fds 0-2; exit with its code."""
    global SERVED
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # with LOOM_STOP_FILE the CLI turns Ctrl-C into a stop request the step finishes on (verbs/optimize)
        signal.signal(signal.SIGINT, signal.SIG_IGN if env.get("LOOM_STOP_FILE") else signal.default_int_handler)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        _std_streams(env)
        sys.argv = list(argv)
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        _apply_thread_limits(env)
        if "numpy.random" in sys.modules:  # the global RandomState was seeded once, before the fork
            sys.modules["numpy.random"].seed()
        SERVED = served
        import runpy

        # Libraries imported before the fork may have put classes on __main__ for pickling (Metaflow's
        # ForeachFrame): in a fresh `python flow.py` they would be on the flow's own __main__, so carry them
        main = sys.modules.get("__main__")
        carried = {k: v for k, v in vars(main).items() if isinstance(v, type) and v.__module__ == "__main__"} if main else {}
        try:
            runpy.run_path(argv[0], init_globals=carried, run_name="__main__")
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        os._exit(code)
