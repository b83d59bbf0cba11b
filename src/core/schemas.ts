/** Shared valibot pieces for verb inputs. */
import * as v from "valibot";

export const PATHSPEC_RE = /^[A-Za-z_][A-Za-z0-9_]*\/[A-Za-z0-9_.-]+$/;

/** A reference to a run: a pathspec (Flow/RunId), Flow/latest, a unique run-id prefix or a data object's
 * label. Python resolves it, in one place (loom_py.runtime.data.resolve_ref); here it only has to be there. */
/** A run reference as Python resolves it (runtime/data.resolve_ref): a pathspec, Flow/latest, a run-id prefix or
 * a label. Never a flag (a leading "-") and never whitespace inside: such text names no run, and refusing it here
 * keeps a value like "IngestDataset/1 --launch" from ever looking like a command line. */
const RUN_REF = /^[^\s-][^\s]*$/;
export const Pathspec = (what = "run") =>
  v.pipe(
    v.string(`needs a ${what}: a pathspec (Flow/RunId), Flow/latest or a run-id prefix`),
    v.trim(),
    v.minLength(1, `needs a ${what}: a pathspec (Flow/RunId), Flow/latest or a run-id prefix`),
    v.regex(RUN_REF, `needs a ${what}: a pathspec (Flow/RunId), Flow/latest or a run-id prefix, without spaces or a leading '-'`),
  );

export const DatasetPathspec = v.pipe(
  v.string("is required: pass a data object (its label, IngestDataset/N, IngestDataset/latest or a run-id prefix; `loom datasets` lists them)"),
  v.trim(),
  v.minLength(1, "is required: pass a data object (its label, IngestDataset/N or a run-id prefix; `loom datasets` lists them)"),
  v.regex(RUN_REF, "must name a data object (its label, IngestDataset/N or a run-id prefix), without spaces or a leading '-'; `loom datasets` lists them"),
);

export const Column = v.pipe(v.string(), v.minLength(1, "needs a column name"));

/** A string flag that may be repeated (citty yields a string or an array). */
export const Repeated = v.pipe(
  v.union([v.string(), v.array(v.string())]),
  v.transform((x) => (Array.isArray(x) ? x : [x])),
);

export const PositiveInt = (what: string) =>
  v.pipe(
    v.union([v.string(), v.number()]),
    v.transform((x) => Number(x)),
    v.number(`${what} must be a number`),
    v.integer(`${what} must be a whole number`),
    v.minValue(1, `${what} must be at least 1`),
  );

export const Num = (what: string) =>
  v.pipe(v.union([v.string(), v.number()]), v.transform((x) => Number(x)), v.number(`${what} must be a number`), v.finite(`${what} must be a number`));

/** The schema of a data object's column list, shared by ingest and datasets. */
export const SchemaField = v.object({ name: v.string(), type: v.string(), nullable: v.boolean() });
