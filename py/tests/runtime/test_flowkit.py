"""flowkit's escaping: data- and model-derived strings cannot become HTML, links or images in card Markdown,
and model-written code cannot close its code block. (The rendered cards are checked in a real browser by
test/integration/cards.test.ts.)"""

import re

import pytest

from loom_py.runtime import flowkit

ATTACKS = [
    "![x](http://127.0.0.1:9/leak?d=abc)",
    "<img src=http://127.0.0.1:9/i onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "<script>fetch('http://127.0.0.1:9/s')</script>",
    "**bold** _it_ # heading | a | b |",
    "\x1b]0;pwned\x07\x1b[2Jcleared",
    "<a href='javascript:alert(1)'>x</a>",
]


@pytest.mark.parametrize("s", ATTACKS)
def test_esc_leaves_no_markup(s):
    out = flowkit.esc(s)
    assert "<" not in out and ">" not in out  # no tag can open
    assert "](" not in out and "![" not in out and "[" not in out  # no link or image syntax
    assert "\x1b" not in out and "\x07" not in out
    assert "*" not in out and "_" not in out and "#" not in re.sub(r"&#\d+;", "", out)


@pytest.mark.parametrize("s", ATTACKS)
def test_html_text_and_code_escape(s):
    for out in (flowkit.h(s), flowkit.code(s), flowkit.kv_text({"k": s}, as_html=True)):
        assert "<img" not in out and "<script" not in out and "<a " not in out
        assert "\x1b" not in out


def test_card_header_keeps_code_and_bold_only():
    block = flowkit._inline_html("model `<img src=x>` scored **0.9** ![x](http://h/x)")
    assert "<code>&lt;img src=x&gt;</code>" in block and "<b>0.9</b>" in block
    assert "<img" not in block


def test_fence_outlasts_backticks_in_the_code():
    code = 'x = 1\n```\n![x](http://127.0.0.1:9/leak)\n````\n'
    out = flowkit.fence(code, "python")
    fence = out.split("\n", 1)[0].rstrip("python")
    assert len(fence) == 5 and out.endswith("\n" + fence)
    assert fence not in code


def test_strip_control_keeps_text():
    assert flowkit.strip_control("a\x1b[31mred\x1b[0m\tb\nc\x00\x9b") == "ared\tb\nc"


def test_cells_read_as_text():
    assert flowkit._cell(True) == "✓" and flowkit._cell(False) == "✗"
    assert flowkit._cell({"auc": 0.91234, "n": 3}) == "auc: 0.9123 · n: 3"
