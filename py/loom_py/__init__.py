"""Loom's Python side. Flows in ../flows import this package; the TypeScript CLI talks to it
through :mod:`loom_py.runtime.bridge` (one Python process per verb)."""

__version__ = "0.1.0"
