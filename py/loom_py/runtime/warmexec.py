"""A Metaflow task started from the bridge's warm image (``loom_py/runtime/warm.py``) instead of a fresh interpreter.

Metaflow's runtime starts every task as ``<entrypoint> [options] step NAME ...``. When the bridge runs a
flow with a warm image, the launcher's entrypoint is ``python .../warmexec.py FLOW_FILE``. This script uses
the standard library only (~20 ms). It hands the image its argv, environment, working directory and
standard streams (the pipes the runtime reads the task's log from). The image forks a process that runs
``FLOW_FILE`` as ``python FLOW_FILE ...`` would, with Metaflow and the flow's libraries already imported.
This script then waits for that process's exit status and exits with it. It passes SIGTERM and SIGHUP on;
if this process is killed, the image kills the task.

Where the image cannot take the task (no socket, refused, gone), this process becomes
``python FLOW_FILE ...`` itself (execv). The task runs either way, exactly once: the fallback happens only
before the image has said it started the task.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time

SOCKET_ENV = "LOOM_WARM_SOCKET"
TOKEN_ENV = "LOOM_WARM_TOKEN"  # the per-run secret a task shows the image (the socket's directory is 0700 too)
_HEADER = struct.Struct("!I")


class Refused(Exception):
    """The image did not start the task (nothing ran): run it in a fresh interpreter instead."""


def send_msg(sock: socket.socket, obj: dict, fds: list[int] = ()) -> None:
    """One length-prefixed JSON message, with file descriptors attached to its first byte."""
    data = json.dumps(obj).encode()
    payload = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [payload], list(fds)) if fds else sock.send(payload)
    if sent < len(payload):
        sock.sendall(payload[sent:])


def recv_msg(sock: socket.socket, max_fds: int = 3) -> tuple[dict, list[int]]:
    """The message ``send_msg`` sent and the descriptors that came with it (now open in this process)."""
    chunk, fds, _, _ = socket.recv_fds(sock, 1 << 16, max_fds)
    buf = bytearray(chunk)
    while len(buf) < _HEADER.size:
        more = sock.recv(1 << 16)
        if not more:
            raise ConnectionError("message cut short")
        buf += more
    (n,) = _HEADER.unpack_from(buf)
    while len(buf) < _HEADER.size + n:
        more = sock.recv(1 << 16)
        if not more:
            raise ConnectionError("message cut short")
        buf += more
    return json.loads(bytes(buf[_HEADER.size:_HEADER.size + n])), list(fds)


def open_std_fds() -> list[int]:
    """Which of 0, 1, 2 are open here (a task may run without stdin)."""
    out = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            out.append(fd)
        except OSError:
            pass
    return out


def run_in_image(path: str, argv: list[str]) -> int:
    """Have the image run ``argv`` (``[flow_file, *args]``); its exit code, or -N if signal N ended it.

    Raises Refused when the image did not start it."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        fds = open_std_fds()
        send_msg(sock, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "fds": fds,
                        "token": os.environ.get(TOKEN_ENV, "")}, fds)
        replies = sock.makefile("rb")
        first = replies.readline().decode(errors="replace").split()
    except OSError as e:
        raise Refused(str(e))
    if len(first) != 2 or first[0] != "pid":
        raise Refused(" ".join(first) or "no answer")
    pid = int(first[1])

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    # SIGINT is not forwarded: Ctrl-C reaches the task directly (same process group), as for any task
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    last = replies.readline().decode(errors="replace").split()
    if len(last) == 2 and last[0] == "exit":
        return int(last[1])
    sys.stderr.write("loom: the warm image stopped before the task finished\n")
    return 1


def main(argv: list[str]) -> None:
    flow_file, args = argv[0], argv[1:]
    path = os.environ.get(SOCKET_ENV)
    if path:
        try:
            code = run_in_image(path, [flow_file] + args)
        except Refused as e:
            code = None
            if os.environ.get("LOOM_WARM_LOG"):  # diagnostics: why this task starts fresh
                what = next((" ".join(args[i:i + 2]) for i, a in enumerate(args) if a in ("step", "card")), "")
                try:
                    with open(os.environ["LOOM_WARM_LOG"], "a") as f:
                        f.write(f"{time.time():.3f} fresh {what} ({e})\n")
                except OSError:
                    pass
        if code is not None:
            sys.stderr.flush()
            if code < 0:  # end the way the task ended, so the runtime sees the same status
                signal.signal(-code, signal.SIG_DFL)
                os.kill(os.getpid(), -code)
            os._exit(code if code >= 0 else 1)
    os.execv(sys.executable, [sys.executable, flow_file] + args)


if __name__ == "__main__":
    main(sys.argv[1:])
