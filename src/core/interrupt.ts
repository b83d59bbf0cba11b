/** Ctrl-C as a stop request (decision 0007): the first SIGINT creates the file LOOM_STOP_FILE names, which the
 * flow's step polls (optimize's candidates, validate's folds, pipeline's stages) and finishes on, recording what
 * it did (status INTERRUPTED, the command that continues it); a second one leaves at once (exit 130). The Python
 * processes ignore SIGINT while the file is named (runtime/bridge.py, runtime/stop.py). */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface StopRequest {
  env: { LOOM_STOP_FILE: string };
  done(): void;
}

export function onInterrupt(ctx: { workspace: { dir: string }; ui: { line(m: string): void } }, what: string, after?: () => void): StopRequest {
  const dir = join(ctx.workspace.dir, "tmp");
  const stopFile = join(dir, `stop-${process.pid}-${Date.now()}`);
  let asked = false;
  const handler = () => {
    if (asked) process.exit(130);
    asked = true;
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(stopFile, "");
    } catch {
      process.exit(130);
    }
    ctx.ui.line(`\ninterrupted: ${what} (Ctrl-C again to abort)`);
    after?.();
  };
  process.on("SIGINT", handler);
  return {
    env: { LOOM_STOP_FILE: stopFile },
    done() {
      process.off("SIGINT", handler);
      rmSync(stopFile, { force: true });
    },
  };
}
