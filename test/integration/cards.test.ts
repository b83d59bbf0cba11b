/**
 * Cards read at a glance, and safe to open: the eda, validate, optimize and report cards of real runs,
 * opened in a real headless Chromium (Debian's package, over the DevTools protocol). Each must lead with its
 * status banner (visible, coloured, with a reason), show its key elements, fit the viewport (no horizontal
 * overflow at 1280 and 800 px), and — with class names, a column name and values that carry Markdown/HTML
 * aimed at a loopback beacon server — make zero requests to it and hold no javascript: link.
 * Real runs: 1 ingest, 1 eda, 1 validate, 1 optimize (2 steps, proposed by a local Anthropic-protocol server
 * whose plans, code, output, model class name and errors carry the same payloads), 1 report. Screenshots are kept
 * under $LOOM_CARD_SHOTS (default: the temp workspace).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Browser, CHROMIUM } from "../fixtures/browser";
import { fakeAnthropic } from "../fixtures/llm-servers";
import { loom, rng, tempWorkspace } from "../helpers";

const ws = tempWorkspace();
const shots = process.env.LOOM_CARD_SHOTS ?? join(ws, "shots");
let beaconHits: string[] = [];
let beacon: ReturnType<typeof Bun.serve> | undefined;
let browser: Browser | undefined;
const cards: Record<string, string> = {};

beforeAll(async () => {
  if (!CHROMIUM) return;
  mkdirSync(shots, { recursive: true });
  beacon = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (beaconHits.push(req.url), new Response("x")) });
  const B = `http://127.0.0.1:${beacon.port}`;
  // class names and a column name a model or a file could choose: a Markdown image, an <img>, a javascript: link
  const yes = `![x](${B}/leak?d=class)`;
  const no = `<img src="${B}/img">[j](javascript:alert(1))`;
  const evilCol = `<img src=${B}/col>`;
  const r = rng(5);
  const rows = [`x1,x2,${evilCol},note,label`];
  for (let i = 0; i < 260; i++) {
    const x1 = r(), x2 = r();
    const y = r() < 0.2 + 0.6 * x1 ? yes : no;
    rows.push(`${x1.toFixed(4)},${x2.toFixed(4)},${(r() * 10).toFixed(2)},"${i % 7 === 0 ? `![n](${B}/note)` : "ok"}","${y.replace(/"/g, '""')}"`);
  }
  writeFileSync(join(ws, "evil.csv"), rows.join("\n") + "\n");
  const ing = await loom(["ingest", "--source", "evil.csv", "--json"], { cwd: ws });
  expect(ing.code).toBe(0);
  const run = async (args: string[]) => {
    const o = await loom([...args, "--json"], { cwd: ws });
    expect([0, 1], `${args.join(" ")}: ${o.stderr.slice(-400)}`).toContain(o.code);
    expect(o.json.card_path).toBeTruthy();
    return o.json;
  };
  cards.eda = (await run(["eda", "--dataset", "evil", "--target", "label"])).card_path;
  const val = await run(["validate", "--dataset", "evil", "--target", "label", "--folds", "3"]);
  cards.validate = val.card_path;
  // the search's proposer is a local server speaking Anthropic's protocol: its plans, code, printed output,
  // model class name and error messages all carry Markdown/HTML aimed at the beacon
  const evilCode = (extra: string) => [
    `Plan: ![p](${B}/plan) <img src="${B}/plan2"> [j](javascript:alert(1))`,
    "```python",
    `print("![o](${B}/out) <img src=${B}/out2> \\x1b]0;pwned\\x07")`,
    "from sklearn.linear_model import LogisticRegression",
    "from sklearn.compose import make_column_transformer, make_column_selector",
    "from sklearn.preprocessing import OneHotEncoder",
    "from sklearn.pipeline import make_pipeline",
    "class Evil(LogisticRegression):",
    "    pass",
    `Evil.__name__ = Evil.__qualname__ = "![m](${B}/model)<img src=${B}/model2>"`,
    "def make_model():",
    extra,
    "    pre = make_column_transformer(('passthrough', make_column_selector(dtype_include='number')), (OneHotEncoder(handle_unknown='ignore'), make_column_selector(dtype_exclude='number')))",
    "    return make_pipeline(pre, Evil(max_iter=500))",
    "```",
  ].join("\n");
  const proposer = fakeAnthropic([evilCode("    pass"), evilCode(`    raise ValueError("![e](${B}/err) <img src=${B}/err2>")`)]);
  try {
    const o = await loom(["run", "--dataset", "evil", "--target", "label", "--metric", "Maximize ROC-AUC on a held-out split.", "--steps", "2", "--yes", "--json"],
      { cwd: ws, env: { ANTHROPIC_API_KEY: "test-key", ANTHROPIC_BASE_URL: proposer.url } });
    expect([0, 1], `${o.json?.messages?.[0]} ${o.stderr.slice(-400)}`).toContain(o.code);
    expect(o.json.summary.nodes.total).toBe(2);
    cards.optimize = o.json.card_path;
  } finally {
    proposer.stop();
  }
  cards.report = (await run(["report", "--run", val.pathspec])).card_path;
  browser = await Browser.start();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  beacon?.stop(true);
});

const PROBE = `(() => {
  const b = document.getElementById('loom-banner');
  const r = b ? b.getBoundingClientRect() : null;
  const style = b ? getComputedStyle(b) : null;
  return {
    banner: b ? { text: b.innerText, top: r.top, height: r.height, width: r.width, visible: style.visibility !== 'hidden' && style.display !== 'none',
                  background: style.backgroundColor, status: b.dataset.status } : null,
    h2: [...document.querySelectorAll('h2')].map((e) => e.innerText),
    charts: document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length,
    ok: document.querySelectorAll('.loom-ok').length, bad: document.querySelectorAll('.loom-bad').length,
    tables: document.querySelectorAll('table').length,
    jsLinks: [...document.querySelectorAll('a')].filter((a) => /^\\s*javascript:/i.test(a.getAttribute('href') || '')).length,
    remoteImgs: [...document.querySelectorAll('img')].filter((i) => /^https?:/i.test(i.getAttribute('src') || '')).length,
    wideBlocks: [...document.querySelectorAll('.loom-block, .loom-banner, table')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1).length,
    text: document.body.innerText,
  };
})()`;

async function open(kind: string, width: number) {
  const rep = await browser!.inspect(cards[kind]!, {
    width,
    ready: "document.getElementById('loom-banner') && document.querySelectorAll('table').length",
    probe: PROBE,
    screenshot: join(shots, `${kind}-${width}.png`),
  });
  return rep;
}

function expectAtAGlance(rep: Awaited<ReturnType<typeof open>>, word: RegExp) {
  const b = rep.probe.banner;
  expect(b, "the card has a status banner").toBeTruthy();
  expect(b.visible).toBe(true);
  expect(b.height).toBeGreaterThan(30);
  expect(b.top).toBeLessThan(200); // the first thing on the page
  expect(b.text).toMatch(word);
  expect(b.text.split("\n").length).toBeGreaterThanOrEqual(3); // title, word, one-line reason
  expect(b.background).not.toBe("rgba(0, 0, 0, 0)"); // coloured
  // nothing overflows the viewport width
  expect(rep.scrollWidth).toBeLessThanOrEqual(rep.innerWidth);
  expect(rep.probe.wideBlocks).toBe(0);
  // escaping: no request to the beacon, no javascript: link, no remote image; the class names read as text
  expect(rep.requests.filter((u) => u.includes("127.0.0.1"))).toEqual([]);
  expect(rep.requests.every((u) => u.startsWith("file:") || u.startsWith("data:") || u.startsWith("https://fonts.googleapis.com/"))).toBe(true);
  expect(rep.probe.jsLinks).toBe(0);
  expect(rep.probe.remoteImgs).toBe(0);
}

const maybe = CHROMIUM ? describe : describe.skip;

maybe("cards in a real browser (Chromium)", () => {
  for (const width of [1280, 800]) {
    test(`eda at ${width}px: STATUS banner, leakage first, per-column cards with charts`, async () => {
      const rep = await open("eda", width);
      expectAtAGlance(rep, /STATUS: (OK|WARN)/);
      expect(rep.probe.h2[0]).toBe("Leakage flags");
      expect(rep.probe.h2).toContain("Columns");
      expect(rep.probe.charts).toBeGreaterThanOrEqual(5); // one per column at least
      expect(rep.probe.text).toContain(`<img src=http://127.0.0.1:${beacon!.port}/col>`); // the column name, as text
    }, 60_000);

    test(`validate at ${width}px: VERDICT banner with its reason, checks as ✓/✗`, async () => {
      const rep = await open("validate", width);
      expectAtAGlance(rep, /VERDICT: (PASS|FAIL)/);
      expect(rep.probe.ok + rep.probe.bad).toBeGreaterThanOrEqual(3);
      expect(rep.probe.h2[0]).toBe("Checks");
    }, 60_000);

    test(`optimize at ${width}px: STATUS banner with the best and the spend, the leaderboard`, async () => {
      const rep = await open("optimize", width);
      expectAtAGlance(rep, /STATUS: OK/);
      expect(rep.probe.banner.text).toMatch(/best ROC-AUC: node \d+/);
      expect(rep.probe.banner.text).toContain("spend");
      expect(rep.probe.h2).toContain("Leaderboard");
      expect(rep.probe.text).toContain("def make_model"); // the best solution, in its code block
      expect(rep.probe.text).toContain(`Evil.__name__ = Evil.__qualname__ = "![m](http://127.0.0.1:${beacon!.port}/model)`); // as text
    }, 60_000);

    test(`report at ${width}px: banner over the model card`, async () => {
      const rep = await open("report", width);
      expectAtAGlance(rep, /VERDICT: (PASS|FAIL)/);
      expect(rep.probe.text).toContain("Model card");
    }, 60_000);
  }

  test("the beacon server saw nothing", () => {
    expect(beaconHits).toEqual([]);
  });
});
