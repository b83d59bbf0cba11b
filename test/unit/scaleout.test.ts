import { describe, expect, test } from "bun:test";
import { argoPreflight, datastoreEnv, remotePreflight, resolveDatastore, withOptions, withSpecs, type DatastoreChoice } from "../../src/core/scaleout";

describe("resolveDatastore: the environment over the profile over the record", () => {
  const s3 = { METAFLOW_DEFAULT_DATASTORE: "s3", METAFLOW_DATASTORE_SYSROOT_S3: "s3://b/p/" };
  test.each([
    [{}, {}, null, { type: "local", root: null, metadata: "local" }],
    [s3, {}, null, { type: "s3", root: "s3://b/p", metadata: "local" }],
    [{}, s3 as Record<string, unknown>, null, { type: "s3", root: "s3://b/p", metadata: "local" }],
    [{}, {}, { type: "s3", root: "s3://b/p" }, { type: "s3", root: "s3://b/p", metadata: "local" }],
    [{ METAFLOW_DEFAULT_DATASTORE: "s3" }, {}, { type: "s3", root: "s3://b/p" }, { type: "s3", root: "s3://b/p", metadata: "local" }],
    [{ ...s3, METAFLOW_DEFAULT_METADATA: "service", METAFLOW_SERVICE_URL: "http://md" }, {}, null, { type: "s3", root: "s3://b/p", metadata: "service" }],
  ])("%j + profile %j + record %j", (env, profile, rec, want) => {
    const got = resolveDatastore(env as NodeJS.ProcessEnv, profile, rec);
    expect(typeof got).toBe("object");
    expect(got).toMatchObject(want);
  });
  test.each([
    [{ METAFLOW_DEFAULT_DATASTORE: "s3" }, null, "needs METAFLOW_DATASTORE_SYSROOT_S3"],
    [{ METAFLOW_DEFAULT_DATASTORE: "s3", METAFLOW_DATASTORE_SYSROOT_S3: "/tmp/x" }, null, "must be an s3:// URL"],
    [{ METAFLOW_DEFAULT_DATASTORE: "azure" }, null, "not supported"],
    [{ METAFLOW_DEFAULT_METADATA: "service" }, null, "needs METAFLOW_SERVICE_URL"],
    [{ METAFLOW_DEFAULT_DATASTORE: "local" }, { type: "s3", root: "s3://b/p" }, "runs are on the s3 datastore s3://b/p"],
    [s3, { type: "local" }, "runs are on the local datastore"],
    [{ ...s3, METAFLOW_DATASTORE_SYSROOT_S3: "s3://other/p" }, { type: "s3", root: "s3://b/p" }, "says s3 s3://other/p"],
  ])("%j with record %j refused: %s", (env, rec, msg) => {
    const got = resolveDatastore(env as NodeJS.ProcessEnv, {}, rec);
    expect(typeof got).toBe("string");
    expect(got as string).toContain(msg);
  });
});

test("datastoreEnv: s3 keeps local metadata in the workspace and uploads every code package", () => {
  const e = datastoreEnv({ type: "s3", root: "s3://b/p", metadata: "local", source: "x" }, "/w/.loom");
  expect(e).toMatchObject({ METAFLOW_DEFAULT_DATASTORE: "s3", METAFLOW_DATASTORE_SYSROOT_S3: "s3://b/p", METAFLOW_DATASTORE_SYSROOT_LOCAL: "/w/.loom", METAFLOW_FEAT_ALWAYS_UPLOAD_CODE_PACKAGE: "1" });
  expect(datastoreEnv({ type: "local", root: null, metadata: "local", source: "x" }, "/w/.loom").METAFLOW_DATASTORE_SYSROOT_S3).toBeUndefined();
});

test("withSpecs: the flag, else LOOM_METAFLOW_WITH (space separated), else compute.with", () => {
  expect(withSpecs(["kubernetes:cpu=4,memory=8000", "retry"], { LOOM_METAFLOW_WITH: "batch" }, null)).toEqual(["kubernetes:cpu=4,memory=8000", "retry"]);
  expect(withSpecs(undefined, { LOOM_METAFLOW_WITH: "batch:cpu=2  retry" }, null)).toEqual(["batch:cpu=2", "retry"]);
  expect(withSpecs(undefined, {}, { compute: { with: ["kubernetes"] } })).toEqual(["kubernetes"]);
  expect(withSpecs(undefined, {}, { compute: { with: "kubernetes" } })).toEqual(["kubernetes"]);
  expect(withSpecs(undefined, {}, null)).toEqual([]);
  expect(withOptions(["kubernetes", "retry"])).toEqual(["--with", "kubernetes", "--with", "retry"]);
});

describe("remotePreflight: the first missing prerequisite, one line", () => {
  const s3: DatastoreChoice = { type: "s3", root: "s3://b/p", metadata: "local", source: "x" };
  const facts = (over: Partial<Parameters<typeof remotePreflight>[0]>) =>
    remotePreflight({ ds: s3, specs: ["kubernetes"], env: { METAFLOW_KUBERNETES_CONTAINER_IMAGE: "img" }, profile: {}, hasKubernetesPackage: () => true, hasKubeconfig: () => true, ...over });
  test.each([
    [{ specs: ["retry"] }, null],
    [{}, null],
    [{ ds: { ...s3, type: "local" as const, root: null } }, "needs a shared datastore"],
    [{ hasKubernetesPackage: () => false }, "needs the `kubernetes` Python package"],
    [{ hasKubeconfig: (): boolean => false }, "finds no kubeconfig (~/.kube/config is missing)"],
    [{ hasKubeconfig: (): boolean => false, env: { KUBERNETES_SERVICE_HOST: "10.0.0.1", METAFLOW_KUBERNETES_CONTAINER_IMAGE: "i" } }, null],
    [{ env: {} }, "needs an image with Loom's pinned requirements"],
    [{ env: {}, specs: ["kubernetes:image=loom:1"] }, null],
    [{ env: {}, profile: { METAFLOW_KUBERNETES_CONTAINER_IMAGE: "i" } }, null],
    [{ specs: ["batch"], env: {} }, "needs METAFLOW_BATCH_JOB_QUEUE"],
    [{ specs: ["batch:image=i"], env: { METAFLOW_BATCH_JOB_QUEUE: "q" } }, null],
    [{ specs: ["Kube rnetes"] }, "is not a Metaflow decorator spec"],
  ])("%j → %s", (over, want) => {
    const got = facts(over as Partial<Parameters<typeof remotePreflight>[0]>);
    if (want === null) expect(got).toBeNull();
    else expect(got).toContain(want);
  });
});

describe("argoPreflight: pipeline --deploy-to argo needs a shared datastore and an image", () => {
  const s3: DatastoreChoice = { type: "s3", root: "s3://b/p", metadata: "local", source: "test" };
  const local: DatastoreChoice = { type: "local", root: null, metadata: "local", source: "default" };
  test("local datastore refused whatever the image", () => {
    expect(argoPreflight(local, { METAFLOW_KUBERNETES_CONTAINER_IMAGE: "i" }, {})).toContain("needs a shared datastore");
  });
  test("the image from the environment or the profile; none is refused", () => {
    expect(argoPreflight(s3, { METAFLOW_KUBERNETES_CONTAINER_IMAGE: "i" }, {})).toBeNull();
    expect(argoPreflight(s3, {}, { METAFLOW_KUBERNETES_CONTAINER_IMAGE: "i" })).toBeNull();
    expect(argoPreflight(s3, { METAFLOW_KUBERNETES_CONTAINER_IMAGE: "" }, {})).toContain("set METAFLOW_KUBERNETES_CONTAINER_IMAGE");
  });
});
