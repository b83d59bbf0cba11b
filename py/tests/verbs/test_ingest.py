"""The ingest boundary's pure helpers (table-style) and its readers on real files."""

import codecs
import os
import pathlib

import pytest

from loom_py.runtime.errors import UsageError
from loom_py.verbs.ingest import dedupe_columns, detect_encoding, looks_binary, parse_uri, read_file, sniff_delimiter


@pytest.mark.parametrize("sample, enc, noted", [
    (b"a,b\n1,2\n", "utf-8", False),
    (codecs.BOM_UTF8 + b"a,b\n", "utf-8-sig", False),
    ("a,b\n".encode("utf-16"), "utf-16", True),
    ("name\nJos\xe9\n".encode("latin-1"), "cp1252", True),
    ("caf\u00e9".encode("utf-8")[:-1], "utf-8", False),  # a character cut at the sample's end
])
def test_detect_encoding(sample, enc, noted):
    got, note = detect_encoding(sample)
    assert got == enc
    assert (note is not None) == noted


@pytest.mark.parametrize("text, delim", [
    ("a,b,c\n1,2,3\n", ","),
    ("a;b;c\n1;2;3\n", ";"),
    ("a\tb\n1\t2\n", "\t"),
    ("a|b\n1|2\n", "|"),
    ('name,desc\n"x","a;b;c"\n"y","d;e;f"\n', ","),
    ("single\n1\n2\n", ","),
])
def test_sniff_delimiter(text, delim):
    assert sniff_delimiter(text) == delim


@pytest.mark.parametrize("names, want", [
    (["a", "b"], ["a", "b"]),
    (["a", "a", "a"], ["a", "a_2", "a_3"]),
    (["", "x", ""], ["column_1", "x", "column_3"]),
    ([" pad ", "pad"], ["pad", "pad_2"]),
])
def test_dedupe_columns(names, want):
    assert dedupe_columns(names)[0] == want


@pytest.mark.parametrize("uri, kind, extra", [
    ("sqlite:////abs/x.db", "sqlite", {"path": "/abs/x.db"}),
    ("postgresql://ana@db.example:6543/wh", "postgresql", {"host": "db.example", "port": 6543, "user": "ana", "dbname": "wh"}),
    ("postgres://db/wh", "postgresql", {"port": 5432, "user": ""}),
])
def test_parse_uri(uri, kind, extra):
    got = parse_uri(uri)
    assert got["kind"] == kind
    for k, v in extra.items():
        assert got[k] == v


def test_parse_uri_refuses_passwords_and_unknown_schemes():
    with pytest.raises(UsageError, match="password"):
        parse_uri("postgresql://ana:pw@db/wh")
    with pytest.raises(UsageError, match="unsupported"):
        parse_uri("s3://bucket/key.csv")


def test_looks_binary():
    assert looks_binary(bytes(range(256)))
    assert not looks_binary(b"a,b\n1,2\n")
    assert not looks_binary("a,b\n".encode("utf-16"))


def test_read_csv_types_and_notes(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes("id;when;amount;flag\n1;2024-01-02;3.5;true\n2;2024-02-03;;false\n".encode())
    table, info = read_file(str(p))
    assert table.column_names == ["id", "when", "amount", "flag"]
    assert str(table.schema.field("amount").type) == "double"
    assert str(table.schema.field("flag").type) == "bool"
    assert table.column("amount").null_count == 1
    assert info["delimiter"] == ";"


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"a,b\n", "no data rows"),
    (b'a,b\n1,"x\n', "unterminated"),
    (b"a,b\n1,2\n3\n", "different number of fields"),
    (bytes(range(256)) * 4, "binary"),
])
def test_read_csv_refusals(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises(UsageError, match=match):
        read_file(str(p))


def test_read_is_read_only(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a\n1\n")
    p.chmod(0o444)
    table, _ = read_file(str(p))
    assert table.num_rows == 1


# ---- what a path really is (a FIFO, a device, one endless line): refused by os.stat, never opened ----

def _fifo(d):
    p = d / "pipe.csv"
    os.mkfifo(p)
    return p


def _zero_link(d):
    p = d / "zero.csv"
    p.symlink_to("/dev/zero")
    return p


def _one_line(n):
    def make(d):
        p = d / "wide.csv"
        p.write_bytes(b"a," * (n // 2))
        return p
    return make


@pytest.mark.parametrize("make, match", [
    (_fifo, r"is a FIFO \(named pipe\), not a file"),
    (_zero_link, r"is a character device \(a symlink to /dev/zero\), not a file"),
    (lambda d: pathlib.Path("/dev/null"), r"is a character device, not a file"),
    (_one_line(20_000_000), r"is a single line of 20 MB with no line breaks"),
    (_one_line(200_000), r"is a single line of 200 kB with no line breaks.*a header line, then one row per line"),
    (lambda d: (d / "rows.jsonl").write_bytes(b"[" + b'{"a": 1},' * 30_000 + b"]") and d / "rows.jsonl",
     r"rows\.jsonl is a single line of 270 kB with no line breaks.*one JSON object per line"),
])
def test_special_files_are_named_not_read(tmp_path, make, match):
    p = make(tmp_path)
    with pytest.raises(UsageError, match=match):
        read_file(str(p))  # a FIFO with no writer would block forever if it were opened


@pytest.mark.parametrize("content", [
    b"a,b\n" + b"1,2\n" * 40_000,            # long file, short lines
    b"a" * 100_000 + b",b\n1,2\n",            # a header longer than the sniff window, still lines
])
def test_long_files_with_line_breaks_still_read(tmp_path, content):
    p = tmp_path / "ok.csv"
    p.write_bytes(content)
    table, _ = read_file(str(p))
    assert table.num_rows >= 1
