"""miniwdl's WDL parsers, kept in a cache directory between runs.

miniwdl builds a Lark LALR parser for each WDL version a process parses (its grammar analysed
from scratch: ~0.13 s, a tenth of a short local run) and keeps it in memory only. Lark can save
the analysed parser to a file and load it again (~0.01 s); ``cache_wdl_parsers(directory)``
makes miniwdl's parsers do that in ``directory`` (``cache_dir``: ``$XDG_CACHE_HOME`` or
``~/.cache``, then ``miniwdl-serverless/parsers``; not the state directory, which a run may
start afresh). Each file is named by
a digest of the grammar and Lark's options, and Lark itself stores the digest of the grammar,
the options, its version and Python's in the file and builds the parser again when they do not
match (a file another process is still writing fails to load and is rebuilt the same way), so
a cached parser is never one of another grammar or version. Only the parsers' construction
changes: miniwdl's options, comment collection and parse results are the same.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CACHE_NAME = "miniwdl-serverless"

_UNHASHED = ("lexer_callbacks", "transformer", "postlex", "edit_terminals", "_plugins")


class _CachingLark(types.ModuleType):
    """The ``lark`` module as miniwdl's parser module sees it: the same but for ``Lark``,
    which caches LALR parsers in ``directory``."""

    def __init__(self, lark: types.ModuleType, directory: Path):
        super().__init__(lark.__name__)
        self._lark = lark
        self.directory = directory

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lark, name)

    def Lark(self, grammar: Any, **options: Any) -> Any:  # noqa: N802 - lark's name
        if options.get("parser") != "lalr" or "cache" in options or not isinstance(grammar, str):
            return self._lark.Lark(grammar, **options)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError:  # no cache then: the parser is built as miniwdl builds it
            return self._lark.Lark(grammar, **options)
        return self._lark.Lark(
            grammar, cache=str(self.directory / cache_name(grammar, options)), **options
        )


def cache_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/miniwdl-serverless/parsers`` (``~/.cache`` without the variable)."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / CACHE_NAME / "parsers"


def cache_name(grammar: str, options: dict[str, Any]) -> str:
    """The file a parser of ``grammar`` with ``options`` is cached in (callbacks aside)."""
    described = "".join(f"{k}={options[k]!r};" for k in sorted(options) if k not in _UNHASHED)
    return hashlib.sha256((grammar + "\0" + described).encode()).hexdigest()[:32] + ".lark"


def cache_wdl_parsers(directory: Path) -> None:
    """From now on, in this process, miniwdl's WDL parsers are cached in ``directory``."""
    from WDL import _parser

    current = _parser.lark
    if isinstance(current, _CachingLark):
        current.directory = directory
        return
    _parser.lark = _CachingLark(current, directory)  # type: ignore[assignment]
