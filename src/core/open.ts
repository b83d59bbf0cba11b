/** Opening a card the way `metaflow card view` does: a browser where there is one to show it, else the path.
 * $BROWSER (as Python's webbrowser reads it: commands separated by ':', `%s` for the path) wins; macOS has
 * `open`; Linux needs a display (DISPLAY or WAYLAND_DISPLAY) for `xdg-open`. */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Pure: the command that opens `path`, or null where nothing can show it. */
export function openerFor(path: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform, onPath: (cmd: string) => boolean): string[] | null {
  const browser = (env.BROWSER ?? "").split(":").map((s) => s.trim()).find((s) => s && onPath(s.split(/\s+/)[0]!));
  if (browser) {
    const words = browser.split(/\s+/);
    return words.some((w) => w.includes("%s")) ? words.map((w) => w.replace("%s", path)) : [...words, path];
  }
  if (platform === "darwin") return ["open", path];
  if (platform === "win32") return null;
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return null; // a terminal with no display: print the path
  return onPath("xdg-open") ? ["xdg-open", path] : null;
}

export function onPath(cmd: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (cmd.includes("/")) return existsSync(cmd);
  return (env.PATH ?? "").split(delimiter).some((d) => d && existsSync(join(d, cmd)));
}

/** Start the opener detached (a browser may run long after loom exits); the command used, or null. */
export function openCard(path: string): string | null {
  const cmd = openerFor(path, process.env, process.platform, (c) => onPath(c));
  if (!cmd) return null;
  try {
    const child = spawn(cmd[0]!, cmd.slice(1), { detached: true, stdio: "ignore" });
    child.on("error", () => {});
    child.unref();
    return cmd[0]!;
  } catch {
    return null;
  }
}
