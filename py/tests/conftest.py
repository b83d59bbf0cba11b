import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("METAFLOW_USER", "loom-tests")
os.environ.setdefault("MPLBACKEND", "Agg")
