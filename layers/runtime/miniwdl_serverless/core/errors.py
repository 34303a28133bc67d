"""Errors the engine reports to users, in miniwdl's error-JSON shape."""

from __future__ import annotations

import json
import re
from typing import Any

import WDL
from WDL.runtime.error import error_json as _miniwdl_error_json


class RunError(Exception):
    """A run-level failure with a name (the Step Functions error) and a miniwdl-style cause."""

    def __init__(self, name: str, info: dict[str, Any]):
        super().__init__(info.get("message") or name)
        self.name = name
        self.info = info

    @classmethod
    def of(cls, name: str, message: str, **details: Any) -> RunError:
        """The common shape: ``{"error": name, "message": message, ...details}``."""
        return cls(name, {"error": name, "message": message, **details})

    @property
    def cause(self) -> str:
        return json.dumps(self.info, sort_keys=True)


class BadSubmission(RunError):
    """The execution input itself is malformed (schema, URI, options)."""

    def __init__(self, message: str):
        super().__init__("InvalidSubmission", {"error": "InvalidSubmission", "message": message})


def describe_exception(exn: BaseException) -> dict[str, Any]:
    """miniwdl's error JSON for an exception, with a readable message and `file:line:col`."""
    info = _miniwdl_error_json(exn)
    if isinstance(exn, WDL.Error.MultipleValidationErrors):
        info["message"] = "; ".join(_located(e) for e in exn.exceptions)
        info["errors"] = [describe_exception(e) for e in exn.exceptions]
    elif isinstance(exn, (WDL.Error.ValidationError, WDL.Error.SyntaxError, WDL.Error.ImportError)):
        info["message"] = _located(exn)
    else:
        info.setdefault("message", str(exn) or type(exn).__name__)
    return info


def _located(exn: BaseException) -> str:
    """'file:line:col message' like miniwdl check prints."""
    pos = getattr(exn, "pos", None)
    text = syntax_message(exn) if isinstance(exn, WDL.Error.SyntaxError) else str(exn)
    if pos is not None:
        return f"{pos.abspath}:{pos.line}:{pos.column}: {text}"
    return text


# The parser's (lark's) messages quote the source around the error: a file that is not WDL
# (a workflow path naming some other file) would be echoed back to the submitter.
_PARSER_MESSAGES = ("Unexpected token", "Unexpected character", "No terminal", "Unexpected end")
_TOKEN_TYPE = re.compile(r"Token\('(\$?[A-Za-z0-9_]+)'")
_EXPECTED = re.compile(r"^\s*\*\s*([A-Za-z0-9_]+)\s*$", re.MULTILINE)


def syntax_message(exn: BaseException) -> str:
    """A syntax error's message without any of the source's text: what kind of thing was
    unexpected and which terminals the grammar expected (the position is given beside it)."""
    text = str(exn)
    if text.startswith("unknown WDL version"):
        return "unknown WDL version; choices: " + text.rpartition("choices: ")[2]
    if not text.startswith(_PARSER_MESSAGES) and "\n" not in text:
        return text  # miniwdl's own messages ("unexpected keyword input") quote no source
    token = _TOKEN_TYPE.search(text)
    if token:
        what = f"unexpected {token.group(1)}"
    elif text.startswith("Unexpected end"):
        what = "unexpected end of input"
    else:
        what = "unexpected character"
    expected = sorted(set(_EXPECTED.findall(text)))
    return f"syntax error: {what}" + (
        f"; expected one of {', '.join(expected)}" if expected else ""
    )


def as_run_error(exn: BaseException) -> RunError:
    """Wrap any exception raised while planning or evaluating a run."""
    if isinstance(exn, RunError):
        return exn
    info = describe_exception(exn)
    return RunError(str(info.get("error") or type(exn).__name__), info)
