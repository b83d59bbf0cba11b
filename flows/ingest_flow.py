"""IngestDataset: the single ingest boundary. The launcher has already read and validated the source
(loom_py.ingest.prepare) and staged it as Parquet; IncludeFile copies that file into the datastore, and
this run's artifacts make it a data object that every other verb loads by pathspec."""

from metaflow import FlowSpec, IncludeFile, Parameter, card, current, step


class IngestDataset(FlowSpec):
    data_parquet = IncludeFile("data_parquet", is_text=False, help="staged Parquet file of the source table")
    label = Parameter("label", default="dataset", help="a human name for this data object")
    source_info = Parameter("source_info", default="{}", help="JSON: where the data came from and how it was read")

    @card(type="blank", id="ingest")
    @step
    def start(self):
        import io
        import json

        import pyarrow.parquet as pq

        from loom_py import flowkit
        from loom_py.data import dataset_artifacts

        info = json.loads(self.source_info)
        table = pq.read_table(io.BytesIO(self.data_parquet))
        arts = dataset_artifacts(table, label=self.label, source=info.get("source", {}),
                                 lineage={"verb": "ingest", "inputs": []}, parquet=self.data_parquet)
        for k in ("data_parquet", "label"):  # already artifacts (parameters of this run)
            arts.pop(k)
        for k, v in arts.items():
            setattr(self, k, v)
        self.read_notes = info.get("read", {}).get("notes", [])
        sample = table.slice(0, 20).to_pylist()
        summary = {
            "label": self.label, "rows": self.rows, "columns": self.n_columns, "schema": self.schema,
            "content_hash": self.content_hash, "source": self.source,
            "read": info.get("read", {}), "size_bytes": len(self.data_parquet),
        }
        me = f"IngestDataset/{current.run_id}"
        self.loom_result = flowkit.result(
            "OK", summary, messages=self.read_notes,
            next=[f"loom eda --dataset {me} --target COL", f"loom datasets"],
        )
        current.card.append(flowkit.card_header(
            f"Data object {me}: {self.label}",
            [f"rows: {self.rows}", f"columns: {self.n_columns}", f"content hash: `{self.content_hash}`",
             f"source: {json.dumps(self.source)}"] + [f"note: {n}" for n in self.read_notes]))
        from metaflow.cards import Markdown
        current.card.append(Markdown("## Schema"))
        current.card.append(flowkit.card_table(self.schema, limit=500))
        current.card.append(Markdown("## Sample (first 20 rows)"))
        current.card.append(flowkit.card_table(flowkit.json_safe(sample), limit=20))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    IngestDataset()
