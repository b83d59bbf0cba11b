import * as v from "valibot";
import { existsSync, accessSync, constants, statfsSync } from "node:fs";
import { join } from "node:path";
import { defineVerb } from "../core/define";
import { materialize, requirementsHash, requirementsText } from "../core/assets";
import { bridgeEnv } from "../core/bridge";
import { scanDatastore } from "../core/datastore-scan";
import { cleanupCommand, unfinishedRuns } from "../core/unfinished-runs";
import { interruptedLines, readJournal } from "../core/deploy-journal";
import { loomHome, venvPython } from "../core/home";
import { choosePython, findSystemPython, readSetupRecord } from "../core/pyenv";
import { datastoreExists, locateWorkspace, readConfig, workspaceDatastore } from "../core/workspace";
import { datastoreEnv, remoteCompute, withSpecs, type DatastoreChoice } from "../core/scaleout";
import { EMBEDDED } from "../generated/embedded";

type Status = "PASS" | "WARN" | "FAIL" | "INFO";
interface Check {
  name: string;
  status: Status;
  detail: string;
  fix: string | null;
}

const CheckSchema = v.object({ name: v.string(), status: v.picklist(["PASS", "WARN", "FAIL", "INFO"]), detail: v.string(), fix: v.nullable(v.string()) });

const IMPORTS = `
import json, re, sys
out = {"python": sys.version.split()[0], "drift": []}
try:
    import importlib.metadata as md
    for line in sys.argv[1].splitlines():
        line = line.split('#')[0].strip()
        m = re.match(r'^([A-Za-z0-9_.-]+)(\\[[^\\]]*\\])?==([^;\\s]+)', line)
        if not m: continue
        try:
            have = md.version(m.group(1))
            if have != m.group(3): out["drift"].append(f"{m.group(1)} {have} (pinned {m.group(3)})")
        except md.PackageNotFoundError:
            out["drift"].append(f"{m.group(1)} missing (pinned {m.group(3)})")
except Exception as e:
    out["drift"].append(f"could not read the installed versions: {e}")
try:
    import metaflow, pandas, pyarrow, duckdb, sklearn, numpy, scipy, matplotlib
    from metaflow.metaflow_version import get_version
    out["metaflow"] = metaflow.__version__ if hasattr(metaflow, "__version__") else get_version()
    out["ok"] = True
except Exception as e:
    out["ok"] = False
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
`;

export default defineVerb({
  name: "doctor",
  description: "Check that Loom and Metaflow work on this machine: PASS/WARN/FAIL per check with its fix, and one VERDICT",
  tier: "read-only",
  needsPython: false,
  emitsVerdict: true,
  args: {},
  input: v.object({}),
  summary: v.object({
    checks: v.array(CheckSchema),
    python_executable: v.nullable(v.string()),
    workspace: v.string(),
    metaflow_env: v.record(v.string(), v.string()),
  }),
  human: (out) => {
    const s = out.summary as { checks: Check[] };
    return s.checks.flatMap((c) => [`${c.status.padEnd(4)}  ${c.name.padEnd(22)} ${c.detail}`, ...(c.fix && c.status !== "PASS" ? [`      ${"".padEnd(22)} fix: ${c.fix}`] : [])]);
  },
  async run() {
    const checks: Check[] = [];
    const add = (name: string, status: Status, detail: string, fix: string | null = null) => checks.push({ name, status, detail, fix });
    add("loom executable", "PASS", `loom ${EMBEDDED.version} (runtime ${EMBEDDED.hash}) for ${process.platform}-${process.arch} at ${process.execPath}`);

    const home = loomHome();
    const record = readSetupRecord(home) as (ReturnType<typeof readSetupRecord> & { wheelhouse?: string | null }) | null;
    const resetup = record?.wheelhouse ? `loom setup --force --wheelhouse ${record.wheelhouse}` : "loom setup --force";
    const sys = findSystemPython();
    if (process.env.LOOM_PYTHON) add("python", existsSync(process.env.LOOM_PYTHON) ? "PASS" : "FAIL", `LOOM_PYTHON=${process.env.LOOM_PYTHON}`, "point LOOM_PYTHON at a python3 3.10+ or unset it");
    else if (sys) add("python", "PASS", `${sys.path} (Python ${sys.version})`);
    else add("python", "FAIL", "no python3 3.10+ on PATH", "install python3 (e.g. `apt-get install python3 python3-venv`), then run `loom setup`");

    const choice = choosePython(process.env, home, record, existsSync, requirementsHash());
    let pythonExe: string | null = null;
    if ("error" in choice) {
      add("loom environment", "FAIL", choice.error.split(":")[0]!, "run `loom setup`");
    } else {
      pythonExe = choice.python;
      const p = Bun.spawnSync([choice.python, "-c", IMPORTS, requirementsText()], { stdout: "pipe", stderr: "pipe" });
      let info: { ok?: boolean; metaflow?: string; error?: string; python?: string; drift?: string[] } = {};
      try {
        info = JSON.parse(p.stdout.toString().trim().split("\n").pop() ?? "{}");
      } catch {
        info = { ok: false, error: p.stderr.toString().trim().split("\n").pop() ?? `exit ${p.exitCode}` };
      }
      if (info.ok) {
        add("loom environment", "PASS", `${choice.python} (${choice.source}) imports metaflow, pandas, pyarrow, duckdb, scikit-learn`);
        const mfOk = /^2\.19\./.test(info.metaflow ?? "");
        add("metaflow", mfOk ? "PASS" : "WARN", `Metaflow ${info.metaflow}`, mfOk ? null : "Loom pins Metaflow 2.19.x: run `loom setup --force`");
        const drift = info.drift ?? [];
        const fix = choice.source === "LOOM_PYTHON" ? `run \`${choice.python} -m pip install -r ${materialize(home).requirementsPath}\`` : `run \`${resetup}\``;
        if (drift.length)
          add("pinned requirements", "WARN", `the environment drifted from the pins: ${drift.slice(0, 4).join(", ")}${drift.length > 4 ? `, and ${drift.length - 4} more` : ""}`, fix);
        else add("pinned requirements", "PASS", `every pinned package at its pin (requirements ${requirementsHash().slice(0, 12)})`);
      } else {
        add("loom environment", "FAIL", `${choice.python} is broken: ${info.error ?? "does not start"}`, `run \`${resetup}\``);
        add("metaflow", "FAIL", "not importable", `run \`${resetup}\``);
      }
    }

    const ws = locateWorkspace();
    const mfDir = join(ws.dir, ".metaflow");
    if (!ws.exists) add("workspace", "WARN", `no .loom/ from ${process.cwd()} upward`, "`loom ingest --source FILE` creates one here (or set LOOM_WORKSPACE)");
    else {
      let writable = true;
      try {
        accessSync(ws.dir, constants.W_OK);
      } catch {
        writable = false;
      }
      add("workspace", writable ? "PASS" : "FAIL", `${ws.dir}${writable ? " (writable)" : " is not writable"}`, writable ? null : `fix the permissions of ${ws.dir}`);
    }
    // the configured datastore (Metaflow's own configuration, else the workspace's record): scaleout.ts
    let ds: DatastoreChoice | null = null;
    try {
      ds = workspaceDatastore(ws);
    } catch (e) {
      add("datastore config", "FAIL", (e as Error).message, null);
    }
    const dsEnv = ds ? datastoreEnv(ds, ws.dir) : undefined;
    if (ds && ds.type !== "local" && pythonExe) {
      const rt = materialize(home);
      const code = "import json; from loom_py.runtime.data import probe_datastore; print(json.dumps(probe_datastore()['summary']))";
      const p = Bun.spawnSync([pythonExe, "-c", code], { stdout: "pipe", stderr: "pipe", cwd: ws.exists ? ws.dir : process.cwd(), env: bridgeEnv(process.env, ws, rt, {}, dsEnv) });
      let res: { checks?: Check[] } | null = null;
      try {
        res = JSON.parse(p.stdout.toString().trim().split("\n").pop() ?? "");
      } catch {
        res = null;
      }
      if (!res?.checks) add("datastore", "FAIL", `could not probe the ${ds.type} datastore ${ds.root}: ${p.stderr.toString().trim().split("\n").pop() ?? `exit ${p.exitCode}`}`, "run `loom doctor --debug`");
      else for (const c of res.checks) add(c.name, c.status, c.detail, c.fix);
    }
    const remote = remoteCompute(withSpecs(undefined, process.env, readConfig(ws)));
    if (ds && remote && ds.metadata === "local")
      add("remote metadata", "WARN", `remote compute (${remote}) with local metadata: runs launched from elsewhere are invisible to the Client here`,
        "set METAFLOW_DEFAULT_METADATA=service and METAFLOW_SERVICE_URL (a Metaflow metadata service) in the profile");
    if (!ds || ds.type !== "local") {
      /* a remote datastore was probed above (its local part is metadata only); a configuration error said its line */
    } else if (ws.exists && !datastoreExists(ws)) add("datastore", "WARN", `no Metaflow datastore yet at ${mfDir}`, "`loom ingest --source FILE` creates it");
    else if (ws.exists) {
      const scan = scanDatastore(mfDir);
      const moved = scan.recorded_roots.filter((r) => r !== mfDir && !/^[a-z0-9]+:\/\//.test(r));
      if (scan.problems.length)
        add("datastore", "FAIL", `${scan.problems.length} problem(s) in ${scan.runs} runs: ${scan.problems.slice(0, 3).join("; ")}`, "the datastore is damaged (truncated or partly deleted): restore it from a copy, or move the damaged runs out of .loom/.metaflow");
      else if (moved.length)
        add("datastore", "FAIL", `runs recorded the root ${moved[0]} but the datastore is now at ${mfDir} (moved)`, `move the workspace back to ${moved[0]!.replace(/\/\.loom\/\.metaflow$/, "")}, or re-ingest here`);
      else add("datastore", "PASS", `${scan.runs} runs, ${scan.tasks} tasks, ${scan.artifacts} artifacts: metadata parses, artifacts present`);
      const minAge = Number(process.env.LOOM_UNFINISHED_MIN_AGE_S ?? 600) * 1000;
      const unfinished = unfinishedRuns(mfDir, minAge);
      if (unfinished.length)
        add(
          "unfinished runs",
          "WARN",
          `${unfinished.length} run(s) never finished (killed or crashed; older than ${Math.round(minAge / 60000)} min): ${unfinished.slice(0, 5).join(", ")}${unfinished.length > 5 ? " …" : ""}`,
          `keep them for their logs, or remove them: ${cleanupCommand(mfDir, unfinished)}`,
        );
    }

    const remoteOk = !ds || ds.type === "local" || !checks.some((c) => c.name === "datastore" && c.status === "FAIL");
    if (ws.exists && datastoreExists(ws) && pythonExe && ds && remoteOk) {
      // every data object's stored bytes against their recorded sha256, and staging a killed run left behind
      const rt = materialize(home);
      const code = "import json; from loom_py.runtime.data import verify_all; print(json.dumps(verify_all()['summary']))";
      const p = Bun.spawnSync([pythonExe, "-c", code], { stdout: "pipe", stderr: "pipe", cwd: ws.dir, env: bridgeEnv(process.env, ws, rt, {}, dsEnv) });
      let res: { checked?: number; damaged?: { pathspec: string; why: string }[]; leftovers?: { path: string; bytes: number }[] } | null = null;
      try {
        res = JSON.parse(p.stdout.toString().trim().split("\n").pop() ?? "");
      } catch {
        res = null;
      }
      if (!res) add("data objects", "WARN", `could not check the data objects: ${p.stderr.toString().trim().split("\n").pop() ?? `exit ${p.exitCode}`}`, null);
      else if (res.damaged?.length)
        add("data objects", "FAIL", `${res.damaged.length} of ${res.checked} changed on disk since they were made (sha256 mismatch): ${res.damaged.slice(0, 3).map((d) => d.pathspec).join(", ")}`,
          "do not use them: re-create each from its source (`loom ingest`, `loom features`); restore .loom/.metaflow from a copy to keep the history");
      else add("data objects", "PASS", `${res.checked} data object(s): stored bytes match their recorded sha256`);
      if (res?.leftovers?.length) {
        const mb = res.leftovers.reduce((a, l) => a + l.bytes, 0) / 2 ** 20;
        add("leftover staging", "WARN", `${res.leftovers.length} staging file(s) or folder(s) left by runs that were killed (${mb.toFixed(1)} MiB) (in ${join(ws.dir, "tmp")} and the sandbox roots loom-sbx-* in the temp directory)`,
          // every path, the workspace's own first: the fix runs as printed (a cut list would not)
          `rm -rf ${[...res.leftovers].sort((a, b) => Number(!a.path.startsWith(ws.dir)) - Number(!b.path.startsWith(ws.dir))).map((l) => JSON.stringify(l.path)).join(" ")}`);
      }
    }

    if (ws.exists) {
      const cut = interruptedLines(readJournal(ws.dir));
      if (cut.length)
        add("deploy", "WARN", `${cut.length} interrupted apply(s): ${cut.join("; ")}`, "rerun the apply (`loom deploy --validate ValidateFlow/N --apply`); the alias never points at nothing");
    }

    const user = process.env.METAFLOW_USER || process.env.USER || process.env.LOGNAME;
    add("metaflow user", "PASS", user ? `METAFLOW_USER resolves to '${user}'` : "no $USER: Loom sets METAFLOW_USER=loom for its runs");

    if (process.env.ANTHROPIC_API_KEY || process.env.OPENAI_API_KEY)
      add("model key", "PASS", process.env.ANTHROPIC_API_KEY ? "ANTHROPIC_API_KEY is set" : "OPENAI_API_KEY is set");
    else add("model key", "WARN", "no ANTHROPIC_API_KEY / OPENAI_API_KEY: `loom run` (the model search) needs one, or --model-provider offline; every other verb is keyless", "export ANTHROPIC_API_KEY=… (or use --model-provider offline)");

    add("os sandbox", ...osSandbox());

    add("gpu target", "INFO", process.env.LOOM_GPU_TARGET ? `LOOM_GPU_TARGET=${process.env.LOOM_GPU_TARGET}` : "LOOM_GPU_TARGET unset: `loom train` with nemo refuses and shows its cost plan; LOOM_MODEL_BUILDER_PROVIDER=local builds on this machine's CPU instead");

    try {
      const st = statfsSync(ws.exists ? ws.dir : process.cwd());
      const free = (st.bavail * st.bsize) / 2 ** 30;
      add("free disk", free < 0.2 ? "FAIL" : free < 2 ? "WARN" : "PASS", `${free.toFixed(1)} GiB free`, free < 2 ? "free some disk space" : null);
    } catch {
      add("free disk", "WARN", "could not read free space", null);
    }

    const verdict = checks.some((c) => c.status === "FAIL") ? "FAIL" : "PASS";
    const failed = checks.filter((c) => c.status === "FAIL");
    return {
      status: verdict === "PASS" ? "OK" : "FAIL",
      verdict,
      exit_code: verdict === "PASS" ? 0 : 1,
      pathspec: null,
      card_path: null,
      inputs: [],
      summary: {
        checks,
        python_executable: pythonExe ?? (sys?.path ?? null),
        workspace: ws.dir,
        metaflow_env: { METAFLOW_DATASTORE_SYSROOT_LOCAL: ws.dir, METAFLOW_USER: user || "loom", METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DEFAULT_DATASTORE: "local", ...(dsEnv ?? {}) },
      },
      messages: failed.map((c) => `${c.name}: ${c.fix ?? c.detail}`),
      next: failed.length ? [] : ["loom ingest --source FILE", "loom datasets"],
    };
  },
});

/** Can bubblewrap make the sandbox model-written code runs in (py/loom_py/verbs/optimize/sandbox.py)? */
function osSandbox(): [Status, string, string | null] {
  const fix = "apt-get install bubblewrap (dnf install bubblewrap); LLM searches refuse without it unless --unsafe-no-sandbox";
  if (process.env.LOOM_SANDBOX_BWRAP === "0") return ["WARN", "turned off (LOOM_SANDBOX_BWRAP=0): LLM searches refuse unless --unsafe-no-sandbox", "unset LOOM_SANDBOX_BWRAP"];
  if (process.platform !== "linux") return ["WARN", `no OS sandbox on ${process.platform} yet: searches with a language model need --unsafe-no-sandbox (offline runs under Python's in-process guard only)`, null];
  try {
    const p = Bun.spawnSync(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"], { stdout: "ignore", stderr: "pipe" });
    if (p.exitCode === 0) return ["PASS", "bubblewrap runs here (new user, mount, PID, network, IPC namespaces for model-written code)", null];
    return ["WARN", `bubblewrap cannot create its namespaces here (${p.stderr.toString().trim().split("\n").pop()?.slice(0, 120)})`, "allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1 / AppArmor)"];
  } catch {
    return ["WARN", "bubblewrap (bwrap) is not installed: model-written code would have only Python's in-process guard", fix];
  }
}
