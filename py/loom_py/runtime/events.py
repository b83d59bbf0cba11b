"""Progress events from inside a flow step to the launcher.

A step prints one line ``@@loom {json}`` on stdout; Metaflow prefixes it with the task id, the bridge
finds the marker, and forwards the JSON to the TypeScript side, which renders progress on stderr.
"""

import json
import sys

MARKER = "@@loom "


def emit(kind: str, **data) -> None:
    data["kind"] = kind
    sys.stdout.write(MARKER + json.dumps(data, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def progress(message: str, **data) -> None:
    emit("progress", message=message, **data)


def parse_line(line: str):
    """Return the event dict carried by a (possibly Metaflow-prefixed) output line, else None."""
    i = line.find(MARKER)
    if i < 0:
        return None
    try:
        ev = json.loads(line[i + len(MARKER):])
    except ValueError:
        return None
    return ev if isinstance(ev, dict) else None
