"""IngestDataset: the single ingest boundary. The launcher has already read and validated the source
(loom_py.verbs.ingest.prepare), staged it as Parquet and described it (schema, counts, content hash, sample);
IncludeFile copies both into the datastore, and this run's artifacts make it a data object that every
other verb loads by pathspec."""

from metaflow import FlowSpec, IncludeFile, Parameter, card, current, step

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once, when the step ends (no live-refresh process)


class IngestDataset(FlowSpec):
    data_parquet = IncludeFile("data_parquet", is_text=False, help="staged Parquet file of the source table")
    dataset_meta = IncludeFile("dataset_meta", is_text=True, help="JSON: schema, counts, content hash, source, sample")
    label = Parameter("label", default="dataset", help="a human name for this data object")

    @card(type="blank", id="ingest")
    @step
    def start(self):
        import json

        from metaflow.cards import Markdown

        from loom_py.runtime import flowkit

        meta = json.loads(self.dataset_meta)
        self.schema = meta["schema"]
        self.rows = meta["rows"]
        self.n_columns = meta["n_columns"]
        self.content_hash = meta["content_hash"]
        self.stored_sha256 = meta["stored_sha256"]  # of the staged Parquet bytes, re-checked on every load
        self.source = meta["source"]
        self.lineage = meta["lineage"]
        self.read_notes = meta["read"].get("notes", [])
        summary = {
            "label": self.label, "rows": self.rows, "columns": self.n_columns, "schema": self.schema,
            "content_hash": self.content_hash, "source": self.source, "read": meta["read"],
            "size_bytes": len(self.data_parquet),
        }
        me = f"IngestDataset/{current.run_id}"
        self.loom_result = flowkit.result(
            "OK", summary, messages=self.read_notes,
            next=[f"loom eda --dataset {me} --target COL", "loom datasets"],
        )
        current.card.append(flowkit.card_header(
            f"Data object {me}: {self.label}",
            [f"rows: {self.rows}", f"columns: {self.n_columns}", f"content hash: `{self.content_hash}`",
             "source: " + " · ".join(f"{k}: {v}" for k, v in (self.source or {}).items())] + [f"note: {n}" for n in self.read_notes]))
        current.card.append(Markdown("## Schema"))
        current.card.append(flowkit.card_table(self.schema, limit=500))
        current.card.append(Markdown("## Sample (first 20 rows)"))
        current.card.append(flowkit.card_table(meta["sample"], limit=20))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(IngestDataset)  # leaves without interpreter teardown on success
