import * as v from "valibot";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { defineVerb, type Outcome } from "../core/define";
import { materialize, requirementsHash, requirementsText } from "../core/assets";
import { UsageError } from "../core/errors";
import { loomHome, setupRecordPath, venvDir, venvPython } from "../core/home";
import { findSystemPython, pythonVersion, readSetupRecord, versionAtLeast, type SetupRecord } from "../core/pyenv";
import { readJson, writeJson } from "../core/workspace";
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

/** The platforms `--download-wheelhouse --platform` knows by Loom's names, as pip platform tags.
 * pip does not widen manylinux_2_x tags itself, so linux lists glibc 2.28 down to 2.17 (what pip
 * accepts on a glibc-2.28 machine: Debian 10+, RHEL 8+, Ubuntu 20.04+); macOS 14 tags widen to older. */
const manylinux = (arch: string) => [
  ...Array.from({ length: 12 }, (_, i) => `manylinux_2_${28 - i}_${arch}`),
  `manylinux2014_${arch}`,
  `manylinux2010_${arch}`,
  `manylinux1_${arch}`,
];
export const PIP_PLATFORMS: Record<string, string[]> = {
  "linux-x64": manylinux("x86_64"),
  "linux-arm64": manylinux("aarch64"),
  "darwin-x64": ["macosx_14_0_x86_64"],
  "darwin-arm64": ["macosx_14_0_arm64"],
};

/** Pure: `--platform` to pip's tags (a Loom name, or pip tags as given, comma-separated). */
export function pipPlatforms(platform: string): string[] {
  if (PIP_PLATFORMS[platform]) return PIP_PLATFORMS[platform]!;
  if (/^(windows|win)(-|_|32|$)/.test(platform))
    throw new UsageError(`--platform ${platform}: Loom does not run natively on Windows (Metaflow needs POSIX): use WSL2 and --platform linux-x64`);
  const tags = platform.split(",").map((t) => t.trim()).filter(Boolean);
  if (!tags.length || !tags.every((t) => /^(manylinux|musllinux|macosx|linux)_[A-Za-z0-9_]+$/.test(t)))
    throw new UsageError(`--platform ${platform}: give one of ${Object.keys(PIP_PLATFORMS).join(", ")} or pip platform tags (e.g. manylinux_2_28_x86_64)`);
  return tags;
}

/** Pure: "3.12", "3.12.4", "312" → "3.12". */
export function pipPythonVersion(v: string): string {
  const m = /^3\.?(\d{1,2})(\.\d+)?$/.exec(v.trim());
  if (!m || parseInt(m[1]!, 10) < 10) throw new UsageError(`--python-version ${v}: give the target's Python as 3.10 or newer (e.g. 3.12)`);
  return `3.${parseInt(m[1]!, 10)}`;
}

/** Pure: the packages pip could not find in a wheelhouse (from its stderr). */
export function missingFromPip(stderr: string): string[] {
  const out: string[] = [];
  for (const m of stderr.matchAll(/No matching distribution found for ([^\s]+)/g)) if (!out.includes(m[1]!)) out.push(m[1]!);
  return out;
}

export const loomPlatform = (): string => `${process.platform}-${process.arch}`;
export const MANIFEST = "loom-wheelhouse.json";
interface WheelhouseManifest {
  loom_version: string;
  requirements_sha256: string;
  platform: string;
  pip_platforms: string[] | null;
  python_version: string;
  wheels: number;
  bytes: number;
  created_at: string;
}

interface PipRun {
  code: number;
  stderr: string;
}

/** Run pip, streaming its progress lines; keeps its stderr for the one-line error. */
async function runPip(python: string, args: string[], progress: (line: string) => void, env?: Record<string, string>): Promise<PipRun> {
  const pip = Bun.spawn([python, "-m", "pip", ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const errLines: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, isErr: boolean) => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (isErr) errLines.push(line), errLines.length > 200 && errLines.shift();
        else if (/^(Collecting|Installing collected|Successfully installed|Saved|Processing)/.test(line)) {
          const l = line.replace(/ \(from .*$/, "");
          progress(l.length > 110 ? l.slice(0, 107) + "…" : l);
        }
      }
    }
    if (isErr && buf.trim()) errLines.push(buf.trim());
  };
  await Promise.all([pump(pip.stdout as ReadableStream<Uint8Array>, false), pump(pip.stderr as ReadableStream<Uint8Array>, true)]);
  return { code: await pip.exited, stderr: errLines.join("\n") };
}

const hasPip = (python: string) => Bun.spawnSync([python, "-m", "pip", "--version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

const Summary = v.object({
  installed: v.boolean(),
  python: v.string(),
  python_version: v.string(),
  python_executable: v.string(),
  venv: v.nullable(v.string()),
  requirements_sha256: v.string(),
  packages: v.record(v.string(), v.string()),
  wheelhouse: v.optional(v.nullable(v.string())),
  seconds: v.number(),
});

const DownloadSummary = v.object({
  wheelhouse: v.string(),
  platform: v.string(),
  pip_platforms: v.nullable(v.array(v.string())),
  python_version: v.string(),
  requirements_sha256: v.string(),
  wheels: v.number(),
  bytes: v.number(),
  seconds: v.number(),
});

export default defineVerb({
  name: "setup",
  description: "Set up Loom's own Python environment (a virtual environment with its pinned packages) under LOOM_HOME",
  tier: "workspace-write",
  needsPython: false,
  args: {
    force: { type: "boolean", description: "rebuild the environment even if it is up to date" },
    wheelhouse: { type: "string", description: "install from the wheels in DIR with no network (a directory made by --download-wheelhouse)" },
    "download-wheelhouse": { type: "string", description: "download the pinned wheels into DIR for an offline `loom setup --wheelhouse DIR`, then stop" },
    platform: { type: "string", description: "with --download-wheelhouse: the machine the wheels are for (linux-x64, linux-arm64, darwin-x64, darwin-arm64, or pip platform tags; default this one)" },
    "python-version": { type: "string", description: "with --download-wheelhouse: the target machine's Python, e.g. 3.12 (default this machine's)" },
  },
  input: v.object({
    force: v.optional(v.boolean()),
    wheelhouse: v.optional(v.string()),
    "download-wheelhouse": v.optional(v.string()),
    platform: v.optional(v.string()),
    "python-version": v.optional(v.string()),
  }),
  summary: v.union([Summary, DownloadSummary]),
  writes: (input) =>
    input["download-wheelhouse"]
      ? `downloads the pinned wheels into ${resolve(input["download-wheelhouse"])} (nothing in the workspace)`
      : `creates or updates Loom's Python environment under ${loomHome()}${input.wheelhouse ? ` from the wheels in ${resolve(input.wheelhouse)}` : ""} (nothing in the workspace)`,
  human: (out) => {
    if ("wheels" in (out.summary as object)) {
      const d = out.summary as v.InferOutput<typeof DownloadSummary>;
      return [
        kv("wheelhouse", d.wheelhouse),
        kv("for", `${d.platform}, Python ${d.python_version}`),
        kv("wheels", `${d.wheels} (${(d.bytes / 1e6).toFixed(0)} MB) in ${d.seconds.toFixed(1)} s`),
        kv("offline", `loom setup --wheelhouse ${d.wheelhouse}`),
      ];
    }
    const s = out.summary as v.InferOutput<typeof Summary>;
    return [
      kv("python", `${s.python_executable} (${s.python_version})`),
      kv("environment", s.installed ? `installed in ${s.seconds.toFixed(1)} s${s.wheelhouse ? ` from ${s.wheelhouse}` : ""}` : "already up to date (nothing to do)"),
      kv("metaflow", s.packages["metaflow"] ?? "?"),
    ];
  },
  async run(input, ctx) {
    const t0 = performance.now();
    const home = loomHome();
    const rt = materialize(home);
    if (input["download-wheelhouse"]) return downloadWheelhouse(input["download-wheelhouse"], input.platform, input["python-version"], rt.requirementsPath, ctx, t0);
    if (input.platform || input["python-version"]) throw new UsageError("--platform and --python-version go with --download-wheelhouse DIR");
    const wheelhouse = input.wheelhouse ? resolve(input.wheelhouse) : null;
    let manifest: WheelhouseManifest | null = null;
    if (wheelhouse) {
      if (!existsSync(wheelhouse) || !statSync(wheelhouse).isDirectory())
        throw new UsageError(`--wheelhouse ${wheelhouse} is not a directory: make one on a connected machine with \`loom setup --download-wheelhouse DIR\``);
      if (!readdirSync(wheelhouse).some((f) => f.endsWith(".whl")))
        throw new UsageError(`--wheelhouse ${wheelhouse} holds no wheels: make it with \`loom setup --download-wheelhouse ${wheelhouse} --platform ${loomPlatform()}\` on a connected machine`);
      manifest = readJson<WheelhouseManifest | null>(join(wheelhouse, MANIFEST), null);
      if (manifest && manifest.requirements_sha256 !== requirementsHash())
        ctx.ui.progress(`note: ${wheelhouse} was made for other pinned requirements (loom ${manifest.loom_version}); wheels may be missing`);
    }
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
    const pipArgs = ["install", "--disable-pip-version-check", "--no-input", "-r", rt.requirementsPath];
    if (wheelhouse) {
      ctx.ui.progress(`installing the pinned requirements from ${wheelhouse} (no network)`);
      pipArgs.push("--no-index", "--find-links", wheelhouse);
    } else ctx.ui.progress("installing the pinned requirements (first time: about a minute)");
    const pip = await runPip(vp, pipArgs, (l) => ctx.ui.progress(l));
    if (pip.code !== 0) {
      const missing = missingFromPip(pip.stderr);
      if (wheelhouse && missing.length) {
        const pyv = (pythonVersion(vp) ?? sys.version).split(".").slice(0, 2).join(".");
        const made = manifest && (manifest.platform !== loomPlatform() || manifest.python_version !== pyv) ? ` (it was made for ${manifest.platform}, Python ${manifest.python_version})` : "";
        throw new UsageError(
          `the wheelhouse ${wheelhouse} has no wheel of ${missing.join(", ")} for this machine (${loomPlatform()}, Python ${pyv})${made}: on a connected machine run \`loom setup --download-wheelhouse ${wheelhouse} --platform ${loomPlatform()} --python-version ${pyv}\``,
        );
      }
      const lines = pip.stderr.split("\n").filter(Boolean);
      const last = lines.filter((l) => /error/i.test(l)).pop() ?? lines.pop() ?? "pip failed";
      throw new UsageError(
        wheelhouse
          ? `installing from the wheelhouse ${wheelhouse} failed (${last.slice(0, 200)}): remake it with \`loom setup --download-wheelhouse\``
          : `installing the requirements failed (${last.slice(0, 200)}): check the network to the package index (or use \`loom setup --wheelhouse DIR\`), then rerun \`loom setup\``,
      );
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
    writeJson(setupRecordPath(home), { ...record, wheelhouse });
    const out = done(true, sys.path, sys.version, vp, pk.have, venvDir(home));
    (out.summary as { wheelhouse: string | null }).wheelhouse = wheelhouse;
    return out;
  },
});

/** `--download-wheelhouse DIR`: every pinned wheel (and its dependencies) for one platform and Python. */
async function downloadWheelhouse(dirArg: string, platform: string | undefined, pyVersion: string | undefined, reqPath: string, ctx: { ui: { progress(m: string): void } }, t0: number): Promise<Outcome> {
  const dir = resolve(dirArg);
  const tags = platform ? pipPlatforms(platform) : null;
  const target = pyVersion ? pipPythonVersion(pyVersion) : null;
  const home = loomHome();
  // a pip to download with: Loom's venv, else a system python's, else a throwaway venv (ensurepip)
  let python: string | null = existsSync(venvPython(home)) && hasPip(venvPython(home)) ? venvPython(home) : null;
  let scratch: string | null = null;
  if (!python) {
    const sys = findSystemPython();
    if (!sys) throw new UsageError("no python3 3.10+ found to run pip with: install one or set LOOM_SETUP_PYTHON=/path/to/python3");
    if (hasPip(sys.path)) python = sys.path;
    else {
      scratch = mkdtempSync(join(tmpdir(), "loom-pip-"));
      const mk = Bun.spawnSync([sys.path, "-m", "venv", scratch], { stdout: "pipe", stderr: "pipe" });
      if (mk.exitCode !== 0) throw new UsageError(`\`${sys.path} -m venv\` failed: install the venv module (e.g. \`apt-get install python3-venv\`)`);
      python = venvPython(scratch);
    }
  }
  try {
    const hostPy = (pythonVersion(python) ?? "3").split(".").slice(0, 2).join(".");
    mkdirSync(dir, { recursive: true });
    const args = ["download", "--disable-pip-version-check", "--no-input", "--only-binary=:all:", "--dest", dir, "-r", reqPath];
    for (const t of tags ?? []) args.push("--platform", t);
    if (target) args.push("--python-version", target, "--implementation", "cp");
    ctx.ui.progress(`downloading the pinned wheels for ${platform ?? loomPlatform()}, Python ${target ?? hostPy} into ${dir}`);
    const pip = await runPip(python, args, (l) => ctx.ui.progress(l));
    if (pip.code !== 0) {
      const missing = missingFromPip(pip.stderr);
      if (missing.length)
        throw new UsageError(`PyPI has no wheel of ${missing.join(", ")} for ${platform ?? loomPlatform()}, Python ${target ?? hostPy}: choose another --platform / --python-version`);
      const lines = pip.stderr.split("\n").filter(Boolean);
      const last = lines.filter((l) => /error/i.test(l)).pop() ?? lines.pop() ?? "pip failed";
      throw new UsageError(`downloading the wheels failed (${last.slice(0, 200)}): check the network to the package index, then rerun`);
    }
    const wheels = readdirSync(dir).filter((f) => f.endsWith(".whl"));
    const bytes = wheels.reduce((a, f) => a + statSync(join(dir, f)).size, 0);
    const manifest: WheelhouseManifest = {
      loom_version: EMBEDDED.version,
      requirements_sha256: requirementsHash(),
      platform: platform ?? loomPlatform(),
      pip_platforms: tags,
      python_version: target ?? hostPy,
      wheels: wheels.length,
      bytes,
      created_at: new Date().toISOString(),
    };
    writeJson(join(dir, MANIFEST), manifest);
    writeFileSync(join(dir, "requirements.txt"), requirementsText());
    const { created_at: _c, loom_version: _l, ...rest } = manifest;
    return {
      status: "OK",
      exit_code: 0,
      pathspec: null,
      card_path: null,
      inputs: [],
      summary: { wheelhouse: dir, ...rest, seconds: (performance.now() - t0) / 1000 },
      messages: [],
      next: [`loom setup --wheelhouse ${dir}`],
    };
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}
