/** The registry: every verb Loom has. The CLI, --json contract, gate and agent all read this list. */
import type { VerbDef } from "../core/define";
import connect from "./connect";
import datasets from "./datasets";
import doctor from "./doctor";
import eda from "./eda";
import features from "./features";
import viz from "./viz";
import ingest from "./ingest";
import optimize from "./optimize";
import setup from "./setup";
import train from "./train";
import validate from "./validate";
import deploy from "./deploy";
import report from "./report";
import pipeline from "./pipeline";
import ops from "./ops";
import collab from "./collab";
import open from "./open";
import runs from "./runs";

export const VERBS: VerbDef[] = [
  setup,
  doctor,
  connect,
  ingest,
  datasets,
  eda,
  viz,
  features,
  optimize,
  validate,
  pipeline,
  train,
  deploy,
  report,
  ops,
  collab,
  runs,
  open,
];

export function findVerb(name: string): VerbDef | undefined {
  return VERBS.find((v) => v.name === name || v.aliases?.includes(name));
}
