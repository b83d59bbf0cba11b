/** Shared valibot pieces for verb inputs. */
import * as v from "valibot";

export const PATHSPEC_RE = /^[A-Za-z_][A-Za-z0-9_]*\/[A-Za-z0-9_.-]+$/;

export const Pathspec = (what = "run") =>
  v.pipe(v.string(`needs a ${what} pathspec`), v.regex(PATHSPEC_RE, `expected a ${what} pathspec like IngestDataset/123`));

export const DatasetPathspec = v.pipe(
  v.string("is required: pass a data object pathspec (IngestDataset/N or FeaturesFlow/N; `loom datasets` lists them)"),
  v.regex(PATHSPEC_RE, "expected a data object pathspec like IngestDataset/123 (`loom datasets` lists them)"),
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
