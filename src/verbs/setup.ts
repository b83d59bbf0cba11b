import * as v from "valibot";
import { existsSync, rmSync } from "node:fs";
import { defineVerb, type Outcome } from "../core/define";
import { materialize, requirementsHash } from "../core/assets";
import { UsageError } from "../core/errors";
import { loomHome, setupRecordPath, venvDir, venvPython } from "../core/home";
import { findSystemPython, pythonVersion, readSetupRecord, versionAtLeast, type SetupRecord } from "../core/pyenv";
import { writeJson } from "../core/workspace";
import { kv } from "../core/ui";
import { EMBEDDED } from "../generated/embedded";

const CHECK = `
import importlib.metadata as md, json, re, sys
want = {}
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if not line: continue
    m = re.match(r'^([A-Za-z0-9_.-]+)(\\[[^\\]]*\\])?==([^;\\s]+)', line)
    if m: want[m.group(1)] = m.group(3)
have, missing = {}, []
for name, ver in want.items():
    try:
        have[name] = md.version(name)
        if have[name] != ver: missing.append(f"{name}=={ver} (have {have[name]})")
    except md.PackageNotFoundError:
        missing.append(f"{name}=={ver}")
import metaflow, pandas, pyarrow, duckdb, sklearn, scipy, matplotlib, numpy
print(json.dumps({"have": have, "missing": missing}))
`;

function checkPackages(python: string, reqPath: string): { have: Record<string, string>; missing: string[] } | null {
  const p = Bun.spawnSync([python, "-c", CHECK, reqPath], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) return null;
  try {
    return JSON.parse(p.stdout.toString().trim().split("\n").pop()!);
  } catch {
    return null;
  }
}

const Summary = v.object({
  installed: v.boolean(),
  python: v.string(),
  python_version: v.string(),
  python_executable: v.string(),
  venv: v.nullable(v.string()),
  requirements_sha256: v.string(),
  packages: v.record(v.string(), v.string()),
  seconds: v.number(),
});

export default defineVerb({
  name: "setup",
  description: "Provision Loom's Python environment (a venv with the pinned requirements) under LOOM_HOME",
  tier: "workspace-write",
  needsPython: false,
  args: {
    force: { type: "boolean", description: "rebuild the environment even if it is up to date" },
  },
  input: v.object({ force: v.optional(v.boolean()) }),
  summary: Summary,
  writes: () => `creates or updates Loom's Python environment under ${loomHome()} (nothing in the workspace)`,
  human: (out) => {
    const s = out.summary as v.InferOutput<typeof Summary>;
    return [
      kv("python", `${s.python_executable} (${s.python_version})`),
      kv("environment", s.installed ? `installed in ${s.seconds.toFixed(1)} s` : "already up to date (nothing to do)"),
      kv("metaflow", s.packages["metaflow"] ?? "?"),
    ];
  },
  async run(input, ctx) {
    const t0 = performance.now();
    const home = loomHome();
    const rt = materialize(home);
    const done = (installed: boolean, base: string, version: string, exe: string, packages: Record<string, string>, venv: string | null): Outcome => ({
      status: "OK",
      exit_code: 0,
      pathspec: null,
      card_path: null,
      inputs: [],
      summary: { installed, python: base, python_version: version, python_executable: exe, venv, requirements_sha256: requirementsHash(), packages, seconds: (performance.now() - t0) / 1000 },
      messages: [],
      next: ["loom doctor", "loom ingest --source FILE"],
    });

    if (process.env.LOOM_PYTHON) {
      const py = process.env.LOOM_PYTHON;
      const ver = existsSync(py) ? pythonVersion(py) : null;
      if (!ver || !versionAtLeast(ver, [3, 10])) throw new UsageError(`LOOM_PYTHON=${py} is not a working python 3.10+: fix it or unset it`);
      const pk = checkPackages(py, rt.requirementsPath);
      if (!pk || pk.missing.length)
        throw new UsageError(
          `LOOM_PYTHON=${py} lacks Loom's pinned packages${pk ? ` (${pk.missing.slice(0, 3).join(", ")}${pk.missing.length > 3 ? ", …" : ""})` : ""}: run \`${py} -m pip install -r ${rt.requirementsPath}\` or unset LOOM_PYTHON`,
        );
      return done(false, py, ver, py, pk.have, null);
    }

    const vp = venvPython(home);
    const rec = readSetupRecord(home);
    if (!input.force && rec && rec.requirements_sha256 === requirementsHash() && existsSync(vp)) {
      const pk = checkPackages(vp, rt.requirementsPath);
      if (pk && !pk.missing.length) return done(false, rec.python, rec.python_version, vp, pk.have, venvDir(home));
      ctx.ui.progress("the environment is incomplete: repairing");
    }
    const sys = findSystemPython();
    if (!sys)
      throw new UsageError("no python3 3.10+ found: install one (e.g. `apt-get install python3 python3-venv`, or python.org) or set LOOM_SETUP_PYTHON=/path/to/python3");
    ctx.ui.progress(`using ${sys.path} (Python ${sys.version})`);
    if (input.force || !existsSync(vp) || !pythonVersion(vp)) {
      rmSync(venvDir(home), { recursive: true, force: true });
      ctx.ui.progress(`creating the environment in ${venvDir(home)}`);
      const mk = Bun.spawnSync([sys.path, "-m", "venv", venvDir(home)], { stdout: "pipe", stderr: "pipe" });
      if (mk.exitCode !== 0)
        throw new UsageError(`\`${sys.path} -m venv\` failed (${mk.stderr.toString().trim().split("\n").pop()}): install the venv module (e.g. \`apt-get install python3-venv\`)`);
    }
    ctx.ui.progress("installing the pinned requirements (first time: about a minute)");
    const pip = Bun.spawn([vp, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r", rt.requirementsPath], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const errTail: string[] = [];
    const pump = async (stream: ReadableStream<Uint8Array>, isErr: boolean) => {
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of stream) {
        buf += dec.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (isErr) errTail.push(line), errTail.length > 20 && errTail.shift();
          else if (/^(Collecting|Installing collected|Successfully installed)/.test(line)) {
            const l = line.replace(/ \(from .*$/, "");
            ctx.ui.progress(l.length > 110 ? l.slice(0, 107) + "…" : l);
          }
        }
      }
    };
    await Promise.all([pump(pip.stdout as ReadableStream<Uint8Array>, false), pump(pip.stderr as ReadableStream<Uint8Array>, true)]);
    if ((await pip.exited) !== 0) {
      const last = errTail.filter((l) => /error/i.test(l)).pop() ?? errTail.pop() ?? "pip failed";
      throw new UsageError(`installing the requirements failed (${last.slice(0, 200)}): check the network to the package index, then rerun \`loom setup\``);
    }
    const pk = checkPackages(vp, rt.requirementsPath);
    if (!pk || pk.missing.length) throw new UsageError(`the environment does not import cleanly after install: run \`loom setup --force\` (or \`loom doctor\`)`);
    const record: SetupRecord = {
      python: sys.path,
      python_version: sys.version,
      venv: venvDir(home),
      venv_python: vp,
      requirements_sha256: requirementsHash(),
      packages: pk.have,
      installed_at: new Date().toISOString(),
      loom_version: EMBEDDED.version,
    };
    writeJson(setupRecordPath(home), record);
    return done(true, sys.path, sys.version, vp, pk.have, venvDir(home));
  },
});
