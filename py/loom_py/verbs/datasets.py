"""`loom datasets`: every data object in the workspace, newest first, through the Client API."""

from __future__ import annotations

from loom_py.runtime.data import client, require_datastore

DATA_OBJECT_FLOWS = ("IngestDataset", "FeaturesFlow")


def _source_text(src: dict) -> str:
    if not isinstance(src, dict):
        return ""
    if src.get("kind") == "file":
        return src.get("path", "")
    if src.get("kind") in ("sqlite", "postgresql"):
        where = src.get("path") or src.get("uri") or ""
        what = src.get("table") or (src.get("query") or "")[:40]
        return f"{src['kind']}:{where} {what}".strip()
    if src.get("from"):
        return f"from {src['from']}"
    return src.get("kind", "")


def list_datasets(params: dict) -> dict:
    require_datastore()
    mf = client()
    rows = []
    for flow_name in DATA_OBJECT_FLOWS:
        try:
            runs = list(mf.Flow(flow_name))
        except Exception:
            continue
        for run in runs:
            try:
                if not run.successful:
                    continue
                d = run.data
                rows.append({
                    "pathspec": run.pathspec,
                    "label": str(getattr(d, "label", "") or ""),
                    "rows": int(d.rows) if "rows" in d else None,
                    "columns": int(d.n_columns) if "n_columns" in d else None,
                    "content_hash": getattr(d, "content_hash", None) if "content_hash" in d else None,
                    "created": run.created_at.isoformat() if run.created_at else None,
                    "source": _source_text(d.source if "source" in d else {}),
                    "flow": flow_name,
                })
            except Exception:
                continue  # a damaged run is reported by `loom doctor`, not here
    rows.sort(key=lambda r: r["created"] or "", reverse=True)
    return {"status": "OK", "summary": {"count": len(rows), "datasets": rows},
            "next": [f"loom eda --dataset {rows[0]['pathspec']} --target COL"] if rows else ["loom ingest --source FILE"]}
