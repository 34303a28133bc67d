"""miniwdl's WDL parsers cached between runs (local/parser_cache.py)."""

from __future__ import annotations

from pathlib import Path

import lark
import pytest
from WDL import _grammar, _parser

from miniwdl_serverless.local import parser_cache

SOURCE = """version 1.0
# a comment
workflow w {
  input { Int x = 1 }  # another
  output { Int y = x + 1 }
}
"""


def options(comments: list[lark.Token]) -> dict[str, object]:
    """The options miniwdl builds its parsers with."""
    return {
        "start": "document",
        "parser": "lalr",
        "maybe_placeholders": False,
        "propagate_positions": True,
        "lexer_callbacks": {"COMMENT": comments.append},
    }


@pytest.fixture
def cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(_parser, "lark", lark)  # put back after the test
    parser_cache.cache_wdl_parsers(tmp_path / "parsers")
    return tmp_path / "parsers"


def test_a_parser_is_saved_then_loaded_and_parses_as_a_fresh_one(cached: Path) -> None:
    grammar = _grammar.get("1.0")[0]
    fresh_comments: list[lark.Token] = []
    fresh = lark.Lark(grammar, **options(fresh_comments)).parse(SOURCE)  # type: ignore[arg-type]
    for _ in range(2):  # the first builds and saves it, the second loads it
        comments: list[lark.Token] = []
        tree = _parser.lark.Lark(grammar, **options(comments)).parse(SOURCE)
        assert tree == fresh
        assert [str(c) for c in comments] == [str(c) for c in fresh_comments]
        assert len(comments) == 2
    assert [p.name for p in cached.iterdir()] == [parser_cache.cache_name(grammar, options([]))]


def test_a_damaged_file_is_rebuilt(cached: Path) -> None:
    grammar = _grammar.get("1.0")[0]
    cached.mkdir(parents=True)
    path = cached / parser_cache.cache_name(grammar, options([]))
    path.write_bytes(b"not a parser\n")
    comments: list[lark.Token] = []
    assert _parser.lark.Lark(grammar, **options(comments)).parse(SOURCE) is not None
    assert path.read_bytes() != b"not a parser\n"


def test_the_name_follows_grammar_and_options_but_not_callbacks() -> None:
    a = parser_cache.cache_name("g", options([]))
    assert a == parser_cache.cache_name("g", options([]))  # another list's callback
    assert a != parser_cache.cache_name("h", options([]))
    assert a != parser_cache.cache_name("g", {**options([]), "start": "expr"})


def test_miniwdl_parses_through_the_cache(cached: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_parser, "_lark_cache", {})  # miniwdl builds its parser anew
    document = _parser.parse_document(SOURCE)
    assert document.workflow.name == "w"
    assert len(list(cached.iterdir())) == 1
    assert _parser.lark.Token is lark.Token  # the rest of lark as it is


def test_the_cache_dir_follows_xdg(tmp_path: Path) -> None:
    assert parser_cache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == (
        tmp_path / "miniwdl-serverless" / "parsers"
    )
    assert parser_cache.cache_dir({}) == Path.home() / ".cache" / "miniwdl-serverless" / "parsers"
