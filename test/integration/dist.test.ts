/**
 * Distribution, end to end: `scripts/release.sh` cross-compiles the four binaries, `install.sh` picks,
 * verifies and installs one (from a directory, file:// and a loopback HTTP server), the arm64 binary
 * starts under qemu-user, and on a PATH without npm or Bun the installed linux-x64 binary provisions its
 * environment from a wheelhouse with PyPI cut off, then runs the README's main job (scripts/demo.sh).
 *
 * The wheelhouse (~200 MB) is cached under build/cache/ (gitignored); `--download-wheelhouse` runs every
 * time (pip skips wheels already there), so the download path is exercised too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { createServer } from "node:net";
import { basename, dirname, join } from "node:path";
import { LOOM, ROOT, tempDir } from "../helpers";

const VERSION = "9.8.7";
const TARGETS = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"];
const WORK = tempDir("loom-dist-");
const REL = join(WORK, "release");
const SYS_PY = realpathSync(Bun.which("python3") ?? "/usr/bin/python3");
const PY_MINOR = Bun.spawnSync([SYS_PY, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.toString().trim();
const REQ12 = new Bun.CryptoHasher("sha256").update(readFileSync(join(ROOT, "py", "requirements.txt"))).digest("hex").slice(0, 12);
const WHEELHOUSE = join(ROOT, "build", "cache", `wheelhouse-${REQ12}-linux-x64-py${PY_MINOR}`);
const HERE = `${process.platform}-${process.arch}`;

interface Proc {
  code: number;
  stdout: string;
  stderr: string;
}
async function sh(cmd: string[], opts: { cwd?: string; env?: Record<string, string | undefined>; clean?: boolean } = {}): Promise<Proc> {
  const env: Record<string, string> = {};
  if (!opts.clean) for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const k of ["METAFLOW_USER", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "LOOM_WORKSPACE", "LOOM_PYTHON"]) delete env[k];
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const p = Bun.spawn(cmd, { cwd: opts.cwd ?? WORK, env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code: await p.exited, stdout, stderr };
}
const sha256 = (path: string) => new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
const sums = (dir: string): Record<string, string> =>
  Object.fromEntries(
    readFileSync(join(dir, "SHA256SUMS"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(/\s+\*?/))
      .map(([h, n]) => [n!, h!]),
  );

/** A port nothing listens on (bound, then closed): PyPI "cut off" points here. */
async function closedPort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** A bin directory with everything in /usr/bin and /bin except npm, node and Bun: a machine without them. */
function bareToolsDir(): string {
  const d = join(WORK, "tools");
  mkdirSync(d, { recursive: true });
  const skip = /^(node|nodejs|npm|npx|corepack|bun|bunx)$/;
  for (const src of ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    if (!existsSync(src) || src === "/usr/local/bin") continue;
    for (const n of readdirSync(src)) if (!skip.test(n) && !existsSync(join(d, n))) symlinkSync(join(src, n), join(d, n));
  }
  return d;
}

let release: Proc;
const INSTALL_DIR = join(WORK, "bin");
const PATH_BARE = () => `${INSTALL_DIR}:${join(WORK, "tools")}`;

beforeAll(async () => {
  release = await sh(["bash", join(ROOT, "scripts", "release.sh"), "--version", VERSION, "--out", REL], { cwd: ROOT });
  bareToolsDir();
  mkdirSync(join(WORK, "user"), { recursive: true });
});
afterAll(() => rmSync(WORK, { recursive: true, force: true }));

describe("release build", () => {
  test("four binaries loom-<version>-<os>-<arch>, their SHA256SUMS, each the right executable format", () => {
    if (release.code !== 0) throw new Error(release.stderr);
    const listed = sums(REL);
    expect(Object.keys(listed).sort()).toEqual(TARGETS.map((t) => `loom-${VERSION}-${t}`).sort());
    for (const [name, hash] of Object.entries(listed)) expect(sha256(join(REL, name))).toBe(hash);
    expect(existsSync(join(REL, "install.sh"))).toBe(true);
    const head = (t: string) => readFileSync(join(REL, `loom-${VERSION}-${t}`)).subarray(0, 32);
    // ELF e_machine at 18 (0x3e x86-64, 0xb7 aarch64); Mach-O 64 magic 0xfeedfacf, cputype at 4
    expect(head("linux-x64").subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(head("linux-x64").readUInt16LE(18)).toBe(0x3e);
    expect(head("linux-arm64").readUInt16LE(18)).toBe(0xb7);
    expect(head("darwin-x64").readUInt32LE(0)).toBe(0xfeedfacf);
    expect(head("darwin-x64").readUInt32LE(4)).toBe(0x01000007);
    expect(head("darwin-arm64").readUInt32LE(4)).toBe(0x0100000c);
  });

  test("--version prints the version given to the release and the build's runtime hash", async () => {
    const here = await sh([LOOM, "--version"]);
    const runtime = /runtime ([0-9a-f]{16})/.exec(here.stdout)![1];
    const v = await sh([join(REL, `loom-${VERSION}-linux-x64`), "--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(new RegExp(`^loom ${VERSION.replace(/\./g, "\\.")} \\(runtime ${runtime}, linux-x64, bun [0-9.]+\\)$`));
  });

  test("the build is reproducible: building linux-x64 again gives the same bytes", async () => {
    const again = join(WORK, "again");
    const r = await sh(["bash", join(ROOT, "scripts", "release.sh"), "--version", VERSION, "--targets", "linux-x64", "--out", again], { cwd: ROOT });
    expect(r.code).toBe(0);
    expect(sums(again)).toEqual({ [`loom-${VERSION}-linux-x64`]: sums(REL)[`loom-${VERSION}-linux-x64`]! });
    rmSync(again, { recursive: true, force: true });
  });

  test("windows is refused with the reason, not built", async () => {
    const r = await sh(["bash", join(ROOT, "scripts", "release.sh"), "--targets", "windows-x64", "--out", join(WORK, "win")], { cwd: ROOT });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Metaflow does not run natively on Windows");
    expect(existsSync(join(WORK, "win"))).toBe(false);
  });
});

const QEMU = Bun.which("qemu-aarch64-static");
const ARM_SYSROOT = "/usr/aarch64-linux-gnu";
describe.skipIf(!QEMU || !existsSync(join(ARM_SYSROOT, "lib", "ld-linux-aarch64.so.1")) || HERE !== "linux-x64")("linux-arm64 under qemu-user", () => {
  const arm = (args: string[], env?: Record<string, string>) => sh([QEMU!, "-L", ARM_SYSROOT, join(REL, `loom-${VERSION}-linux-arm64`), ...args], { env });
  test("--version, --help and doctor start", async () => {
    const v = await arm(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(`loom ${VERSION} (runtime `);
    expect(v.stdout).toContain("linux-arm64");
    const h = await arm(["--help"]);
    expect(h.code).toBe(0);
    for (const verb of ["setup", "doctor", "ingest", "validate"]) expect(h.stdout).toContain(verb);
    const d = await arm(["doctor", "--json"], { LOOM_HOME: join(WORK, "arm-home") });
    expect(d.code).toBe(1); // no environment in this LOOM_HOME: a well-formed FAIL
    const out = JSON.parse(d.stdout);
    expect(out.verb).toBe("doctor");
    expect(out.summary.checks.find((c: any) => c.name === "loom executable").detail).toContain("for linux-arm64");
    expect(out.summary.checks.find((c: any) => c.name === "loom environment").fix).toContain("loom setup");
  });
});

describe("install.sh", () => {
  test("from the release directory: this machine's binary, checksum verified, on the PATH, doctor run", async () => {
    const r = await sh(["sh", join(REL, "install.sh"), "--dir", INSTALL_DIR], { env: { LOOM_HOME: join(WORK, "inst-home") } });
    expect(r.code).toBe(0);
    expect(sha256(join(INSTALL_DIR, "loom"))).toBe(sums(REL)[`loom-${VERSION}-${HERE}`]!);
    expect(r.stderr).toContain(`sha256 verified (${sums(REL)[`loom-${VERSION}-${HERE}`]})`);
    expect(r.stdout).toContain("loom executable"); // doctor's table
    expect(r.stdout).toMatch(/VERDICT\s*: FAIL/); // nothing set up in that LOOM_HOME yet
    expect(r.stderr).toContain("loom setup --wheelhouse DIR");
  });

  test("over loopback HTTP: the binary named for the platform asked for", async () => {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => {
      const f = join(REL, basename(new URL(req.url).pathname));
      return existsSync(f) ? new Response(Bun.file(f)) : new Response("not found", { status: 404 });
    } });
    try {
      for (const [os, arch] of [["linux", "arm64"], ["darwin", "arm64"], ["darwin", "x64"]]) {
        const dir = join(WORK, `bin-${os}-${arch}`);
        const r = await sh(["sh", join(ROOT, "install.sh"), "--base", `http://127.0.0.1:${server.port}/`, "--dir", dir, "--no-doctor"], {
          env: { LOOM_INSTALL_OS: os, LOOM_INSTALL_ARCH: arch },
        });
        expect(r.code).toBe(0);
        expect(sha256(join(dir, "loom"))).toBe(sums(REL)[`loom-${VERSION}-${os}-${arch}`]!);
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      server.stop(true);
    }
  });

  test("a corrupted download is refused and nothing is installed (file:// base)", async () => {
    const bad = join(WORK, "corrupt");
    mkdirSync(bad, { recursive: true });
    copyFileSync(join(REL, "SHA256SUMS"), join(bad, "SHA256SUMS"));
    const name = `loom-${VERSION}-${HERE}`;
    copyFileSync(join(REL, name), join(bad, name));
    const fd = openSync(join(bad, name), "r+");
    writeSync(fd, Buffer.from([0x42]), 0, 1, 5_000_000); // one byte in the middle
    closeSync(fd);
    const dir = join(WORK, "bin-corrupt");
    const r = await sh(["sh", join(ROOT, "install.sh"), "--base", `file://${bad}`, "--dir", dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`checksum mismatch for ${name}: expected ${sums(REL)[name]}`);
    expect(existsSync(join(dir, "loom"))).toBe(false);
  });

  test("picks the newest version listed; a platform not listed is a clear refusal", async () => {
    const d = join(WORK, "multi");
    mkdirSync(d, { recursive: true });
    const lines: string[] = [];
    for (const v of ["0.9.0", "0.10.0", "0.2.5"]) {
      const n = `loom-${v}-linux-x64`;
      writeFileSync(join(d, n), `#!/bin/sh\necho v${v}\n`);
      lines.push(`${sha256(join(d, n))}  ${n}`);
    }
    writeFileSync(join(d, "SHA256SUMS"), lines.join("\n") + "\n");
    const dir = join(WORK, "bin-multi");
    const r = await sh(["sh", join(ROOT, "install.sh"), "--base", d, "--dir", dir, "--no-doctor"], { env: { LOOM_INSTALL_OS: "linux", LOOM_INSTALL_ARCH: "x64" } });
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, "loom"), "utf8")).toContain("v0.10.0");
    const none = await sh(["sh", join(ROOT, "install.sh"), "--base", d, "--dir", dir, "--no-doctor"], { env: { LOOM_INSTALL_OS: "darwin", LOOM_INSTALL_ARCH: "arm64" } });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("lists no loom build for darwin-arm64");
  });
});

describe.skipIf(HERE !== "linux-x64")("offline setup from a wheelhouse, then the main job, with no npm or Bun", () => {
  const home = join(WORK, "offline-home");
  let port = 0;
  const offline = () => ({
    PATH: PATH_BARE(),
    HOME: join(WORK, "user"),
    LOOM_HOME: home,
    LOOM_SETUP_PYTHON: SYS_PY,
    PIP_INDEX_URL: `http://127.0.0.1:${port}/simple`,
    PIP_RETRIES: "0",
    PIP_TIMEOUT: "2",
    PIP_NO_CACHE_DIR: "1",
    PIP_CONFIG_FILE: "/dev/null",
  });
  const installed = () => join(INSTALL_DIR, "loom");

  test("--download-wheelhouse fills the wheelhouse for linux-x64 and this Python", async () => {
    port = await closedPort();
    const r = await sh([LOOM, "setup", "--download-wheelhouse", WHEELHOUSE, "--platform", "linux-x64", "--python-version", PY_MINOR, "--json"]);
    if (r.code !== 0) throw new Error(r.stdout + r.stderr);
    const s = JSON.parse(r.stdout).summary;
    expect(s.platform).toBe("linux-x64");
    expect(s.python_version).toBe(PY_MINOR);
    expect(s.pip_platforms).toContain("manylinux_2_17_x86_64");
    const wheels = readdirSync(WHEELHOUSE).filter((f) => f.endsWith(".whl"));
    for (const pkg of ["metaflow", "pandas", "scikit_learn", "lightgbm", "duckdb", "pyarrow", "psycopg_binary"]) expect(wheels.some((w) => w.startsWith(pkg + "-"))).toBe(true);
    expect(JSON.parse(readFileSync(join(WHEELHOUSE, "loom-wheelhouse.json"), "utf8")).requirements_sha256.slice(0, 12)).toBe(REQ12);
  });

  test("PyPI is really cut off: setup without the wheelhouse fails with the one-line fix", async () => {
    const r = await sh([installed(), "setup"], { clean: true, env: { ...offline(), LOOM_HOME: join(WORK, "cut-home") } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n").pop()).toMatch(/^loom setup: installing the requirements failed \(.*\): check the network .*--wheelhouse DIR/);
  });

  test("a wheel missing from the wheelhouse is named with the platform", async () => {
    const partial = join(WORK, "partial-wheelhouse");
    mkdirSync(partial, { recursive: true });
    for (const f of readdirSync(WHEELHOUSE)) if (!f.startsWith("lightgbm-")) symlinkSync(join(WHEELHOUSE, f), join(partial, f));
    const r = await sh([installed(), "setup", "--wheelhouse", partial], { clean: true, env: { ...offline(), LOOM_HOME: join(WORK, "partial-home") } });
    expect(r.code).toBe(2);
    const last = r.stderr.trim().split("\n").pop()!;
    expect(last).toContain(`has no wheel of lightgbm==4.6.0 for this machine (linux-x64, Python ${PY_MINOR})`);
    expect(last).toContain(`loom setup --download-wheelhouse ${partial} --platform linux-x64 --python-version ${PY_MINOR}`);
  });

  test("setup --wheelhouse gives a working environment; the installed binary runs the README's main job", async () => {
    const s = await sh([installed(), "setup", "--wheelhouse", WHEELHOUSE, "--json"], { clean: true, env: offline() });
    if (s.code !== 0) throw new Error(s.stdout + s.stderr);
    const sum = JSON.parse(s.stdout).summary;
    expect(sum.installed).toBe(true);
    expect(sum.wheelhouse).toBe(WHEELHOUSE);
    expect(sum.packages.metaflow).toBe("2.19.39");
    const d = await sh([installed(), "doctor", "--json"], { clean: true, env: offline() });
    const checks = JSON.parse(d.stdout).summary.checks;
    expect(checks.find((c: any) => c.name === "loom environment").status).toBe("PASS");
    expect(checks.find((c: any) => c.name === "pinned requirements").status).toBe("PASS");
    expect(checks.find((c: any) => c.name === "loom executable").detail).toContain(`loom ${VERSION} (runtime `);

    expect(Bun.which("bun", { PATH: PATH_BARE() })).toBeNull();
    expect(Bun.which("npm", { PATH: PATH_BARE() })).toBeNull();
    const demoDir = join(WORK, "demo");
    const r = await sh(["bash", join(ROOT, "scripts", "demo.sh")], { clean: true, env: { ...offline(), LOOM_BIN: installed(), LOOM_DEMO_DIR: demoDir } });
    if (r.code !== 0) throw new Error(r.stderr.slice(-3000));
    expect(r.stderr).toMatch(/VERDICT\s*: (PASS|FAIL)/);
    expect(r.stderr).toMatch(/== done: PipelineFlow\/\d+\./);
    for (const flow of ["IngestDataset", "EdaFlow", "FeaturesFlow", "OptimizeFlow", "ValidateFlow", "ReportFlow"])
      expect(existsSync(join(demoDir, ".loom", ".metaflow", flow))).toBe(true);
    expect(readdirSync(join(home, "runtime"))).toHaveLength(1); // the binary's own embedded runtime
  });

  test("drift is a WARN whose fix (setup from the same wheelhouse) repairs it offline", async () => {
    const vpy = join(home, "venv", "bin", "python");
    const u = await sh([vpy, "-m", "pip", "uninstall", "-y", "-q", "optuna"], { clean: true, env: offline() });
    expect(u.code).toBe(0);
    const d = await sh([installed(), "doctor", "--json"], { clean: true, env: offline() });
    const pinned = JSON.parse(d.stdout).summary.checks.find((c: any) => c.name === "pinned requirements");
    expect(pinned.status).toBe("WARN");
    expect(pinned.detail).toContain("optuna missing (pinned 4.5.0)");
    expect(pinned.fix).toBe(`run \`loom setup --force --wheelhouse ${WHEELHOUSE}\``);
    const fix = await sh([installed(), "setup", "--wheelhouse", WHEELHOUSE], { clean: true, env: offline() });
    expect(fix.code).toBe(0);
    const again = await sh([installed(), "doctor", "--json"], { clean: true, env: offline() });
    expect(JSON.parse(again.stdout).summary.checks.find((c: any) => c.name === "pinned requirements").status).toBe("PASS");
  });
});
