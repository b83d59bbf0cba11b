/** The live leaderboard: pure rendering of the search's "leaderboard" events. */
export interface BoardRow {
  rank: number | null;
  node: number;
  operator: string;
  model: string;
  score: number | null;
  seconds: number;
  status: string;
  error?: string | null;
}

export interface BoardEvent {
  step: number;
  steps: number;
  metric: string;
  best: { node: number | null; score: number | null };
  spend_usd: number;
  rows: BoardRow[];
  last?: Array<{ node: number; operator: string; status: string; score: number | null; error?: string | null }>;
}

const fmt = (x: number | null | undefined) => (x === null || x === undefined ? "—" : Math.abs(x) >= 1000 ? x.toFixed(1) : x.toPrecision(5));

export function progressLine(ev: BoardEvent): string {
  const best = ev.best?.score === null || ev.best?.score === undefined ? "none yet" : `${fmt(ev.best.score)} (node ${ev.best.node})`;
  return `step ${ev.step}/${ev.steps} · best ${ev.metric} ${best} · spend $${(ev.spend_usd ?? 0).toFixed(4)}`;
}

export function nodeLines(ev: BoardEvent): string[] {
  return (ev.last ?? []).map((n) =>
    `node ${n.node} ${n.operator}: ${n.status === "ok" ? `${ev.metric} ${fmt(n.score)}` : `${n.status}${n.error ? ` (${n.error.slice(0, 100)})` : ""}`}`,
  );
}

export function renderBoard(ev: BoardEvent): string[] {
  const head = ["rank", "node", "operator", "model", ev.metric || "score", "seconds", "status"];
  const body = ev.rows.map((r) => [r.rank === null ? "-" : String(r.rank), String(r.node), r.operator, (r.model ?? "?").slice(0, 24), fmt(r.score), r.seconds.toFixed(1), r.status]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(head), ...body.map(line), progressLine(ev)];
}
