/** The remote-compute preflight of a verb (run.ts, before the gate): the `--with` specs in effect, checked
 * against the workspace's datastore and this machine (kubernetes package, kubeconfig, image). */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { UsageError } from "./errors";
import { requirePython } from "./pyenv";
import { remotePreflight, withOptions, withSpecs } from "./scaleout";
import { readConfig, workspaceDatastore, type Workspace } from "./workspace";

export function hasKubeconfig(env: NodeJS.ProcessEnv): boolean {
  const files = env.KUBECONFIG ? env.KUBECONFIG.split(":").filter(Boolean) : [join(env.HOME || homedir(), ".kube", "config")];
  return files.some((f) => existsSync(f));
}

export function pythonHas(module: string): boolean {
  const py = requirePython();
  const p = Bun.spawnSync([py.python, "-c", `import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(${JSON.stringify(module)}) else 1)`], { stdout: "ignore", stderr: "ignore" });
  return p.exitCode === 0;
}

/** The Metaflow `--with` options for every flow of this verb, or exit 2 with the first reason they cannot run. */
export function computePreflight(flag: unknown, ws: Workspace, env: NodeJS.ProcessEnv = process.env): string[] {
  const specs = withSpecs(flag, env, readConfig(ws));
  if (!specs.length) return [];
  const ds = workspaceDatastore(ws, env);
  const why = remotePreflight({ ds, specs, env, profile: ds.profile, hasKubernetesPackage: () => pythonHas("kubernetes"), hasKubeconfig: () => hasKubeconfig(env) });
  if (why) throw new UsageError(why);
  return withOptions(specs);
}
