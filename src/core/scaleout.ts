/**
 * Scale-out: which Metaflow datastore and metadata provider a workspace uses, and which remote compute
 * (`--with kubernetes` / `--with batch`) its flows run on. Loom honours Metaflow's own configuration: the
 * environment (METAFLOW_DEFAULT_DATASTORE, METAFLOW_DATASTORE_SYSROOT_S3, …) over a Metaflow profile
 * (METAFLOW_PROFILE → $METAFLOW_HOME/config_<name>.json, else config.json). The workspace records the
 * datastore it was made on (.loom/config.json `datastore`) so a later shell without the variables still
 * reads its runs, and a shell pointing elsewhere is told so instead of silently seeing an empty store.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export interface DatastoreChoice {
  type: "local" | "s3";
  /** s3://bucket/prefix for s3; null for local (the workspace's .loom) */
  root: string | null;
  /** the metadata provider: local (files beside the launcher) or service (METAFLOW_SERVICE_URL) */
  metadata: string;
  /** where the choice came from, for doctor and error lines */
  source: string;
}

export type Profile = Record<string, unknown>;

/** Metaflow's own config file for the active profile ({} when there is none). A named profile whose file
 * is missing is an error line, as Metaflow itself would refuse it. */
export function readMetaflowProfile(env: NodeJS.ProcessEnv): { profile: Profile; path: string | null } | string {
  const home = env.METAFLOW_HOME || join(env.HOME || homedir(), ".metaflowconfig");
  const name = env.METAFLOW_PROFILE;
  const path = join(home, name ? `config_${name}.json` : "config.json");
  if (!existsSync(path)) {
    if (name) return `METAFLOW_PROFILE=${name} but ${path} does not exist: create it (\`metaflow configure\`) or unset METAFLOW_PROFILE`;
    return { profile: {}, path: null };
  }
  try {
    const p = JSON.parse(readFileSync(path, "utf8"));
    if (!p || typeof p !== "object" || Array.isArray(p)) return `${path} must hold a JSON object: fix it or unset METAFLOW_PROFILE`;
    return { profile: p as Profile, path };
  } catch (e) {
    return `${path} is not valid JSON (${(e as Error).message}): fix it or unset METAFLOW_PROFILE`;
  }
}

/** A Metaflow setting the way Metaflow reads it: METAFLOW_X from the environment, else X from the profile. */
export function mfSetting(env: NodeJS.ProcessEnv, profile: Profile, key: string): string | undefined {
  const full = `METAFLOW_${key}`;
  const e = env[full];
  if (e !== undefined && e !== "") return e;
  const p = profile[full];
  return typeof p === "string" && p !== "" ? p : undefined;
}

export interface RecordedDatastore {
  type: string;
  root?: string | null;
}

/**
 * Pure: the datastore a workspace's flows use, or one actionable line. The configuration (env over
 * profile) wins where it names a datastore; else the workspace's record; else local. A configuration that
 * disagrees with the record is refused: the runs are where the record says.
 */
export function resolveDatastore(env: NodeJS.ProcessEnv, profile: Profile, recorded: RecordedDatastore | null): DatastoreChoice | string {
  const configured = mfSetting(env, profile, "DEFAULT_DATASTORE");
  const type = configured ?? recorded?.type ?? "local";
  const source = configured ? (env.METAFLOW_DEFAULT_DATASTORE ? "METAFLOW_DEFAULT_DATASTORE" : "Metaflow profile") : recorded ? ".loom/config.json" : "default";
  const metadata = mfSetting(env, profile, "DEFAULT_METADATA") ?? "local";
  if (type !== "local" && type !== "s3")
    return `datastore '${type}' is not supported by Loom yet: use METAFLOW_DEFAULT_DATASTORE=s3 (any S3-compatible store) or local`;
  if (metadata !== "local" && metadata !== "service")
    return `metadata provider '${metadata}' is unknown: set METAFLOW_DEFAULT_METADATA to local or service`;
  if (metadata === "service" && !mfSetting(env, profile, "SERVICE_URL"))
    return "METAFLOW_DEFAULT_METADATA=service needs METAFLOW_SERVICE_URL (the metadata service's URL)";
  let root: string | null = null;
  if (type === "s3") {
    root = mfSetting(env, profile, "DATASTORE_SYSROOT_S3") ?? (recorded?.type === "s3" ? recorded.root ?? null : null);
    if (!root) return "the s3 datastore needs METAFLOW_DATASTORE_SYSROOT_S3=s3://BUCKET/PREFIX (in the environment or the Metaflow profile)";
    if (!/^s3:\/\/[^/]+/.test(root)) return `METAFLOW_DATASTORE_SYSROOT_S3 must be an s3:// URL (got '${root}')`;
    root = root.replace(/\/+$/, "");
  }
  if (recorded && (recorded.type !== type || (type === "s3" && (recorded.root ?? "").replace(/\/+$/, "") !== root)))
    return `this workspace's runs are on the ${recorded.type} datastore${recorded.root ? ` ${recorded.root}` : ""} (.loom/config.json) but the configuration (${source}) says ${type}${root ? ` ${root}` : ""}: unset the METAFLOW_* variables / profile that differ, or use a new workspace`;
  return { type, root, metadata, source };
}

/** The environment that points Metaflow at a datastore choice (added over the inherited one). */
export function datastoreEnv(ds: DatastoreChoice, wsDir: string): Record<string, string> {
  const env: Record<string, string> = {
    METAFLOW_DEFAULT_DATASTORE: ds.type,
    METAFLOW_DEFAULT_METADATA: ds.metadata,
    // local metadata (and the local datastore) live in the workspace: the Client finds runs from any cwd
    METAFLOW_DATASTORE_SYSROOT_LOCAL: wsDir,
    LOOM_DATASTORE: ds.type,
  };
  if (ds.type === "s3") {
    env.METAFLOW_DATASTORE_SYSROOT_S3 = ds.root!;
    // every run's code package is uploaded, so a run can be re-run or inspected from the datastore alone
    env.METAFLOW_FEAT_ALWAYS_UPLOAD_CODE_PACKAGE = "1";
  }
  return env;
}

// ---- remote compute ------------------------------------------------------------------------------

export const REMOTE_COMPUTE = ["kubernetes", "batch"] as const;

/** Pure: the `--with` decorator specs in effect: the flag's values, else LOOM_METAFLOW_WITH (space
 * separated: a spec's own options are comma separated, `kubernetes:cpu=4,memory=8000`), else the workspace config's `compute.with`. */
export function withSpecs(flag: unknown, env: NodeJS.ProcessEnv, config: unknown): string[] {
  const list = (x: unknown): string[] =>
    Array.isArray(x) ? x.flatMap(list) : typeof x === "string" ? x.split(/\s+/).filter(Boolean) : [];
  const fromFlag = list(flag);
  if (fromFlag.length) return fromFlag;
  const fromEnv = list(env.LOOM_METAFLOW_WITH);
  if (fromEnv.length) return fromEnv;
  const c = config as { compute?: { with?: unknown } } | null;
  return list(c?.compute?.with);
}

/** The remote compute a spec list names (kubernetes or batch), or null for local compute. */
export function remoteCompute(specs: string[]): string | null {
  for (const s of specs) {
    const name = s.split(":")[0]!.trim();
    if ((REMOTE_COMPUTE as readonly string[]).includes(name)) return name;
  }
  return null;
}

/** Pure: the Metaflow `--with` options for a flow run. */
export function withOptions(specs: string[]): string[] {
  return specs.flatMap((s) => ["--with", s]);
}

export interface PreflightFacts {
  ds: DatastoreChoice;
  specs: string[];
  env: NodeJS.ProcessEnv;
  profile: Profile;
  /** does the Python environment have the `kubernetes` package */
  hasKubernetesPackage: () => boolean;
  /** does a kubeconfig exist (KUBECONFIG's files, or ~/.kube/config) */
  hasKubeconfig: () => boolean;
}

/** Pure over its facts: the first reason remote compute cannot start, as one actionable line, or null. */
export function remotePreflight(f: PreflightFacts): string | null {
  const remote = remoteCompute(f.specs);
  for (const s of f.specs) {
    const name = s.split(":")[0]!.trim();
    if (!/^[a-z_]+$/.test(name)) return `--with '${s}' is not a Metaflow decorator spec (e.g. kubernetes, kubernetes:image=IMAGE, batch:cpu=4)`;
  }
  if (!remote) return null;
  if (f.ds.type === "local")
    return `--with ${remote} needs a shared datastore: remote tasks cannot read this machine's .loom; set METAFLOW_DEFAULT_DATASTORE=s3 and METAFLOW_DATASTORE_SYSROOT_S3=s3://BUCKET/PREFIX (or a Metaflow profile) in a new workspace`;
  if (remote === "kubernetes") {
    if (!f.hasKubernetesPackage())
      return "--with kubernetes needs the `kubernetes` Python package in Loom's environment: run `loom setup` with it pinned, or `pip install kubernetes` into Loom's venv";
    const inCluster = !!f.env.KUBERNETES_SERVICE_HOST;
    if (!inCluster && !f.hasKubeconfig())
      return `--with kubernetes finds no kubeconfig (${f.env.KUBECONFIG ? `KUBECONFIG=${f.env.KUBECONFIG} does not exist` : "~/.kube/config is missing"}): point KUBECONFIG at your cluster's config`;
    const image = f.specs.find((s) => /^kubernetes:.*image=/.test(s)) || mfSetting(f.env, f.profile, "KUBERNETES_CONTAINER_IMAGE");
    if (!image)
      return "--with kubernetes needs an image with Loom's pinned requirements: set METAFLOW_KUBERNETES_CONTAINER_IMAGE (or --with kubernetes:image=IMAGE); see docs/architecture.md, Running on a cluster";
  }
  if (remote === "batch") {
    if (!mfSetting(f.env, f.profile, "BATCH_JOB_QUEUE"))
      return "--with batch needs METAFLOW_BATCH_JOB_QUEUE (in the environment or the Metaflow profile)";
    const image = f.specs.find((s) => /^batch:.*image=/.test(s)) || mfSetting(f.env, f.profile, "BATCH_CONTAINER_IMAGE");
    if (!image)
      return "--with batch needs an image with Loom's pinned requirements: set METAFLOW_BATCH_CONTAINER_IMAGE (or --with batch:image=IMAGE)";
  }
  return null;
}

// ---- scheduled pipelines (`loom pipeline --deploy-to argo`) --------------------------------------

export const DEPLOY_TARGETS = ["argo", "argo-workflows"] as const;

/** Pure: why the pipeline cannot be compiled for Argo Workflows here (one actionable line), or null. A template's
 * pods read and write the datastore, so it must be shared (s3), and they need an image with Loom's requirements. */
export function argoPreflight(ds: DatastoreChoice, env: NodeJS.ProcessEnv, profile: Profile): string | null {
  if (ds.type === "local")
    return "--deploy-to argo needs a shared datastore: a cluster's pods cannot read this machine's .loom; set METAFLOW_DEFAULT_DATASTORE=s3 and METAFLOW_DATASTORE_SYSROOT_S3=s3://BUCKET/PREFIX (or a Metaflow profile) in a new workspace";
  if (!mfSetting(env, profile, "KUBERNETES_CONTAINER_IMAGE"))
    return "--deploy-to argo needs an image with Loom's pinned requirements: set METAFLOW_KUBERNETES_CONTAINER_IMAGE (in the environment or the Metaflow profile); see docs/architecture.md, Running on a cluster";
  return null;
}
