import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))  # shared test data (leakdata) for every wing's tests
os.environ.setdefault("METAFLOW_USER", "loom-tests")
os.environ.setdefault("MPLBACKEND", "Agg")
