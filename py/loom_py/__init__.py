"""Loom's Python side. Flows in ../flows import this package; the TypeScript CLI talks to it
through :mod:`loom_py.runtime.bridge` (one Python process per verb)."""

__version__ = "0.1.0"

# Metaflow 2.19 puts every imported package that sets this into the run's code package (under .mf_code/,
# which remote tasks put on PYTHONPATH), every file of it but *.pyc: data files such as
# verbs/train/budgets.json travel too. Flows import loom_py, so a remote task imports it from the package.
METAFLOW_PACKAGE_POLICY = "include"
