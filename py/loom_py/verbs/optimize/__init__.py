"""optimize (`loom run`): the AIDE search. See docs/decisions/0400-optimize-architecture.md.

Modules: metric_spec (the metric text → spec), sandbox (+ sandbox_boot, run inside the candidate process),
library (the offline proposer), llm (prompts + the client for the TS-hosted proposer server), policy (which
operator next), scoring (Loom computes the metric), search (the loop), flowside (prepare + the flow's body).
"""

from loom_py.verbs.optimize.flowside import prepare  # noqa: F401
