"""Hypothesis strategies for hostile values: JSON of the wrong type, huge, unicode (NUL, RTL,
emoji, lone surrogates as JSON escapes decode to), path traversal, and paths that name places
of a ``Confined`` world (``{efs}`` and ``{outside}`` are filled in per example)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

SPECIAL_TEXT = [
    "",
    " ",
    ".",
    "..",
    "../../../../etc/passwd",
    "/..",
    "//",
    "\x00",
    "a\x00b",
    "\u202etxt.exe",  # right-to-left override
    "\u200b",  # zero-width space
    "🎉" * 40,
    "\ud800",  # a lone surrogate: what json.loads makes of "\ud800"
    "x\udcff",
    "é" * 300,
    "x" * 70_000,
    "%2e%2e%2f",
    "~root",
    "$(cat /proc/self/environ)",
    "`id`",
    "; rm -rf /",
    "\n\r\t",
    "-rf",
    "call-t",
    "NaN",
    "null",
]

hostile_text = st.one_of(st.sampled_from(SPECIAL_TEXT), st.text(max_size=40))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 0, -1, 2**63]),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)

PATHS = [
    "{efs}",
    "{efs}/",
    "{efs}/.",
    "{efs}/runs",
    "{efs}/runs/.",
    "{efs}//runs",
    "{efs}/./runs/./.",
    "{efs}/runs/../..",
    "{efs}/runs/../../outside",
    "{efs}/../outside",
    "{efs}/../outside/.",
    "{efs}/../outside/new",
    "{efs}/link-out",
    "{efs}/link-out/.",
    "{efs}/link-out/runs",
    "{efs}/data/in.txt",
    "{efs}/data/in.txt/.",
    "{efs}/data/secret.txt",
    "{efs}/data/secret.txt/x",
    "{efs}/data/environ",
    "{efs}/data/environ/.",
    "{outside}",
    "{outside}/.",
    "{outside}/victim.txt",
    "{outside}/dir",
    "/proc/self",
    "/proc/self/environ",
    "{efs}/" + "a" * 300,  # past NAME_MAX
    "{efs}/" + "d/" * 2100,  # past PATH_MAX
    "{efs}/nul\x00x",
    "{efs}/\ud800",
    "{efs}/é🎉\u202e",
    "{efs}/runs\n",
    "{efs}/ spaced /",
    "relative/runs",
    "",
]

path_templates = st.sampled_from(PATHS)


def fill(value: Any, efs: str, outside: str) -> Any:
    """A generated value with the world's places filled in (recursively)."""
    if isinstance(value, str):
        return value.replace("{efs}", efs).replace("{outside}", outside)
    if isinstance(value, list):
        return [fill(v, efs, outside) for v in value]
    if isinstance(value, dict):
        return {fill(k, efs, outside): fill(v, efs, outside) for k, v in value.items()}
    return value


def path_or_hostile() -> st.SearchStrategy[Any]:
    return st.one_of(path_templates, path_templates, json_values)
