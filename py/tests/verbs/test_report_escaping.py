"""model_card.md escapes every data- or model-derived string: rendered by GitHub's own renderer (cmark-gfm with
its autolink and table extensions, raw HTML allowed as many viewers do) and by report.to_html, hostile column
names, class names, labels, model names, goals and caveats come out as their own text: no image, link or HTML
element, no table cell or row split by a pipe or a newline."""

import html
import re
from html.parser import HTMLParser

import cmarkgfm  # test-only (py/requirements-test.txt)
import pytest
from cmarkgfm.cmark import Options

from loom_py.verbs import report

HOSTILE = [
    "![x](http://127.0.0.1:9/leak.png)",
    "<img src=http://127.0.0.1:9/x onerror=alert(1)>",
    "[a](javascript:alert(1))",
    "<script>alert(1)</script>",
    "a|b|c",
    "line1\nline2 | x",
    "http://127.0.0.1:9/auto and www.evil.example and me@evil.example",
    "`code` ``x`` ` edge",
    "**bold** _em_ ~~s~~",
    "&lt;img src=x&gt; &#60;b&#62;",
    "<http://127.0.0.1:9/angle>",
    "\\[esc\\](http://127.0.0.1:9/e)",
    "[ref]: http://127.0.0.1:9/def",
]
ALLOWED = {"p", "h1", "h2", "h3", "ul", "li", "strong", "code", "table", "thead", "tbody", "tr", "th", "td",
           "html", "head", "meta", "title", "style", "body"}


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.rows = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        if tag == "tr":
            self.rows.append(0)
        if tag in ("td", "th") and self.rows:
            self.rows[-1] += 1

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Tags:
    t = Tags()
    t.feed(page)
    return t


def nodes_with(s: str):
    """Every slot of the card a run's data or a model fills, set to the hostile string ``s``."""
    ing = {"pathspec": "IngestDataset/1", "flow": "IngestDataset", "created": "2024-01-01T00:00:01", "status": "OK",
           "verdict": None, "summary": {}, "messages": [s], "inputs": [], "params": {"target": s},
           "dataset": {"label": s, "rows": 10, "n_columns": 3, "content_hash": s, "source": {"path": s}}}
    eda = {"pathspec": "EdaFlow/2", "flow": "EdaFlow", "created": "2024-01-01T00:00:02", "status": "WARN", "verdict": None,
           "summary": {"leakage_flags": [{"column": s, "reason": s}]}, "messages": [], "inputs": ["IngestDataset/1"],
           "params": {}}
    feat = {"pathspec": "FeaturesFlow/3", "flow": "FeaturesFlow", "created": "2024-01-01T00:00:03", "status": "OK",
            "verdict": None, "summary": {"dropped_for_leakage": [{"column": s, "reason": s}], "manifest": [{"name": s}]},
            "messages": [], "inputs": ["IngestDataset/1", "EdaFlow/2"], "params": {"recipe": s},
            "dataset": {"label": s, "rows": 10, "n_columns": 3, "content_hash": "sha256:bb", "source": {"kind": "features"}}}
    opt = {"pathspec": "OptimizeFlow/4", "flow": "OptimizeFlow", "created": "2024-01-01T00:00:04", "status": "OK",
           "verdict": None, "summary": {}, "messages": [], "inputs": ["FeaturesFlow/3"],
           "params": {"goal": s, "steps": 5, "metric": s}}
    groups = [{"group": s, "rows": 40, "roc_auc": 0.6, "auc": 0.6, "judged": True},
              {"group": "b", "rows": 40, "roc_auc": 0.7, "auc": 0.7, "judged": True}]
    val = {"pathspec": "ValidateFlow/5", "flow": "ValidateFlow", "created": "2024-01-01T00:00:05", "status": "FAIL",
           "verdict": "FAIL", "messages": [s], "inputs": ["FeaturesFlow/3", "OptimizeFlow/4"], "params": {},
           "summary": {"verdict": "FAIL", "target": s, "task": "classification", "metric": "roc_auc",
                       "model": {"name": s, "source": "OptimizeFlow/4"},
                       "cv": {"scheme": "stratified_kfold", "folds": 2, "mean": 0.8, "std": 0.02,
                              "per_fold": [{"fold": 1, "train_rows": 5, "test_rows": 5, "value": 0.8, "purged": 0,
                                            "embargoed": 0}]},
                       "holdout": {"metric": "roc_auc", "value": 0.7, "rows": 20,
                                   "baseline": {"what": s, "baseline": 0.5, "improvement": 0.2, "required": 0.1, "beats": True}},
                       "seal": {"id": s, "rows": 20, "how": s, "rows_hash": s, "evaluations": 1},
                       "reasons": [s], "thresholds": {s: s},
                       "calibration": {"ece": 0.05, "bins": 15, "brier": 0.1, "slope": 1.0, "intercept": 0.0, "ece_of": s,
                                       "judged": {"failed": [s]}},
                       "fairness": {s: {"groups": groups, "too_small": [{"group": s, "reason": s}],
                                        "decision": {"threshold": 0.5, "how": s}, "assessable": False,
                                        "not_assessable_because": [s], "demographic_parity_difference": 0.1,
                                        "demographic_parity_ratio": 0.9, "equalized_odds_difference": 0.1}},
                       "leakage": {"found": False, "duplicates": {"holdout_rows_in_cv": 0}, "holdout_above_cv": False},
                       "dataset": {"pathspec": "FeaturesFlow/3", "content_hash": s}}}
    return {n["pathspec"]: n for n in (ing, eda, feat, opt, val)}


def shown(s: str) -> str:
    return re.sub(r"[\r\n]", " ", s)


@pytest.mark.parametrize("s", HOSTILE)
def test_no_markup_comes_out_of_a_hostile_string(s):
    md = report.build_card(nodes_with(s), "ValidateFlow/5", experiment=s)["markdown"]
    for name, page in (("cmark-gfm", cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE)),
                       ("to_html", report.to_html(md))):
        t = parse(page)
        bad = [(tag, attrs) for tag, attrs in t.tags if tag not in ALLOWED or any(k in ("href", "src") for k, _ in attrs)]
        assert bad == [], f"{name}: {bad}"
        text = "".join(t.text)  # (the parser has decoded the character references)
        # the string is there as its own text, in the title, the goal, a caveat, the model's name…
        assert text.count(shown(s).strip()) >= 5, (name, text[:600])
        # tables: every row has as many cells as its header (a pipe did not add one, a newline did not cut one)
        widths = {n for n in t.rows}
        assert t.rows and all(n in (2, 5, 6, 8) for n in widths), (name, t.rows)


def test_md_text_and_md_code_leave_plain_text_alone():
    for plain in ("churned", "target_copy", "roc_auc 0.7 misses the bar (>= 0.9)", "IngestDataset/12", "a-b.c"):
        assert report.md_text(plain) == plain
    assert report.md_code("x") == "`x`"
    assert report.md_code("a`b") == "``a`b``"
    assert report.md_code("`a") == "`` `a ``"


def test_to_html_reads_the_escapes_back():
    md = report.md_text("![x](http://h/p) <b> a|b _u_ www.h \\[")
    assert report._inline(md) == html.escape("![x](http://h/p) <b> a|b _u_ www.h \\[", quote=False)
    assert report._inline(report.md_text("mail me@h.example @ once")) == "mail <code>me@h.example</code> @ once"
