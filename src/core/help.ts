/** What `loom <verb> --help` derives from a verb's input schema. */
import type { VerbDef } from "./define";

/** Flags the input schema does not mark optional (valibot `object` entries, looked for through a `pipe`). */
export function requiredFlags(verb: VerbDef): string[] {
  let schema: any = verb.input;
  for (let i = 0; i < 4 && schema && !schema.entries; i++) schema = schema.pipe?.[0];
  if (!schema?.entries) return [];
  return Object.entries(schema.entries as Record<string, { type?: string }>)
    .filter(([, s]) => !["optional", "nullish", "exact_optional", "undefinedable"].includes(s?.type ?? ""))
    .map(([k]) => k);
}
