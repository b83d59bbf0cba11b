import * as v from "valibot";
import { existsSync, accessSync, constants, statfsSync } from "node:fs";
import { join } from "node:path";
import { defineVerb } from "../core/define";
import { requirementsHash } from "../core/assets";
import { scanDatastore } from "../core/datastore-scan";
import { loomHome, venvPython } from "../core/home";
import { choosePython, findSystemPython, readSetupRecord } from "../core/pyenv";
import { datastoreExists, locateWorkspace } from "../core/workspace";
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
import json, sys
out = {"python": sys.version.split()[0]}
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
  description: "Diagnose the local Loom + Metaflow stack: PASS/WARN/FAIL per check and one VERDICT",
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
    add("loom executable", "PASS", `loom ${EMBEDDED.version} (runtime ${EMBEDDED.hash}) at ${process.execPath}`);

    const home = loomHome();
    const sys = findSystemPython();
    if (process.env.LOOM_PYTHON) add("python", existsSync(process.env.LOOM_PYTHON) ? "PASS" : "FAIL", `LOOM_PYTHON=${process.env.LOOM_PYTHON}`, "point LOOM_PYTHON at a python3 3.10+ or unset it");
    else if (sys) add("python", "PASS", `${sys.path} (Python ${sys.version})`);
    else add("python", "FAIL", "no python3 3.10+ on PATH", "install python3 (e.g. `apt-get install python3 python3-venv`), then run `loom setup`");

    const choice = choosePython(process.env, home, readSetupRecord(home), existsSync, requirementsHash());
    let pythonExe: string | null = null;
    if ("error" in choice) {
      add("loom environment", "FAIL", choice.error.split(":")[0]!, "run `loom setup`");
    } else {
      pythonExe = choice.python;
      const p = Bun.spawnSync([choice.python, "-c", IMPORTS], { stdout: "pipe", stderr: "pipe" });
      let info: { ok?: boolean; metaflow?: string; error?: string; python?: string } = {};
      try {
        info = JSON.parse(p.stdout.toString().trim().split("\n").pop() ?? "{}");
      } catch {
        info = { ok: false, error: p.stderr.toString().trim().split("\n").pop() ?? `exit ${p.exitCode}` };
      }
      if (info.ok) {
        add("loom environment", "PASS", `${choice.python} (${choice.source}) imports metaflow, pandas, pyarrow, duckdb, scikit-learn`);
        const mfOk = /^2\.19\./.test(info.metaflow ?? "");
        add("metaflow", mfOk ? "PASS" : "WARN", `Metaflow ${info.metaflow}`, mfOk ? null : "Loom pins Metaflow 2.19.x: run `loom setup --force`");
      } else {
        add("loom environment", "FAIL", `${choice.python} is broken: ${info.error ?? "does not start"}`, "run `loom setup --force`");
        add("metaflow", "FAIL", "not importable", "run `loom setup --force`");
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
    if (ws.exists && !datastoreExists(ws)) add("datastore", "WARN", `no Metaflow datastore yet at ${mfDir}`, "`loom ingest --source FILE` creates it");
    else if (ws.exists) {
      const scan = scanDatastore(mfDir);
      const moved = scan.recorded_roots.filter((r) => r !== mfDir);
      if (scan.problems.length)
        add("datastore", "FAIL", `${scan.problems.length} problem(s) in ${scan.runs} runs: ${scan.problems.slice(0, 3).join("; ")}`, "the datastore is damaged (truncated or partly deleted): restore it from a copy, or move the damaged runs out of .loom/.metaflow");
      else if (moved.length)
        add("datastore", "FAIL", `runs recorded the root ${moved[0]} but the datastore is now at ${mfDir} (moved)`, `move the workspace back to ${moved[0]!.replace(/\/\.loom\/\.metaflow$/, "")}, or re-ingest here`);
      else add("datastore", "PASS", `${scan.runs} runs, ${scan.tasks} tasks, ${scan.artifacts} artifacts: metadata parses, artifacts present`);
    }

    const user = process.env.METAFLOW_USER || process.env.USER || process.env.LOGNAME;
    add("metaflow user", "PASS", user ? `METAFLOW_USER resolves to '${user}'` : "no $USER: Loom sets METAFLOW_USER=loom for its runs");

    if (process.env.ANTHROPIC_API_KEY || process.env.OPENAI_API_KEY)
      add("model key", "PASS", process.env.ANTHROPIC_API_KEY ? "ANTHROPIC_API_KEY is set" : "OPENAI_API_KEY is set");
    else add("model key", "WARN", "no ANTHROPIC_API_KEY / OPENAI_API_KEY: `loom run` (the AIDE search) needs one, or --model-provider offline; every other verb is keyless", "export ANTHROPIC_API_KEY=… (or use --model-provider offline)");

    add("os sandbox", ...osSandbox());

    add("gpu target", "INFO", process.env.LOOM_GPU_TARGET ? `LOOM_GPU_TARGET=${process.env.LOOM_GPU_TARGET}` : "LOOM_GPU_TARGET unset: `loom train` with nemo refuses and shows its cost plan; LOOM_MODEL_BUILDER_PROVIDER=local is the CPU stand-in");

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
        metaflow_env: { METAFLOW_DATASTORE_SYSROOT_LOCAL: ws.dir, METAFLOW_USER: user || "loom", METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DEFAULT_DATASTORE: "local" },
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
  if (process.platform !== "linux") return ["WARN", `no OS sandbox on ${process.platform} yet: LLM searches need --unsafe-no-sandbox (offline runs under the audit hook)`, null];
  try {
    const p = Bun.spawnSync(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"], { stdout: "ignore", stderr: "pipe" });
    if (p.exitCode === 0) return ["PASS", "bubblewrap runs here (new user, mount, PID, network, IPC namespaces for model-written code)", null];
    return ["WARN", `bubblewrap cannot create its namespaces here (${p.stderr.toString().trim().split("\n").pop()?.slice(0, 120)})`, "allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1 / AppArmor)"];
  } catch {
    return ["WARN", "bubblewrap (bwrap) is not installed: model-written code would have only the audit hook", fix];
  }
}
