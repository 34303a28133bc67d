"""Errors the engine reports to users, in miniwdl's error-JSON shape."""

from __future__ import annotations

import json
import re
from typing import Any

# miniwdl (WDL) is imported where an exception is described, not here: the handlers that never
# describe one (logs, cancel, submit) import this module without paying for it at cold start.

# Characters of any one text an error keeps (its message, a value it quotes): an error may
# quote what a submitter or a task made as large as they liked (a list of 10,000 missing input
# paths, a 10 MB value that is not an Int), and it is kept in a DynamoDB item (400 KB at
# most, with the execution input beside it) and sent as SendTaskFailure's cause (32 KiB).
TEXT_LIMIT = 4096
LIST_LIMIT = 20  # nested errors kept (MultipleValidationErrors)


def bounded(value: Any) -> Any:
    """An error's JSON with every text cut to ``TEXT_LIMIT`` characters (saying how much was
    left out) and every list to ``LIST_LIMIT`` items."""
    if isinstance(value, str) and len(value) > TEXT_LIMIT:
        return value[:TEXT_LIMIT] + f"... ({len(value) - TEXT_LIMIT} more characters)"
    if isinstance(value, dict):
        return {key: bounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [bounded(item) for item in value[:LIST_LIMIT]]
    return value


class RunError(Exception):
    """A run-level failure with a name (the Step Functions error) and a miniwdl-style cause."""

    def __init__(self, name: str, info: dict[str, Any]):
        info = bounded(info)
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
    import WDL
    from WDL.runtime.error import error_json

    info = error_json(exn)
    if isinstance(exn, WDL.Error.MultipleValidationErrors):
        info["message"] = "; ".join(_located(e) for e in exn.exceptions)
        info["errors"] = [describe_exception(e) for e in exn.exceptions]
    elif isinstance(exn, (WDL.Error.ValidationError, WDL.Error.SyntaxError, WDL.Error.ImportError)):
        info["message"] = _located(exn)
        if isinstance(exn.__cause__, PermissionError):  # an import refused (--no-outside-imports)
            info["message"] += f": {exn.__cause__}"
    else:
        info.setdefault("message", str(exn) or type(exn).__name__)
    return bounded(info)  # type: ignore[no-any-return]


def _located(exn: BaseException) -> str:
    """'file:line:col message' like miniwdl check prints."""
    import WDL

    pos = getattr(exn, "pos", None)
    text = syntax_message(exn) if isinstance(exn, WDL.Error.SyntaxError) else str(exn)
    if pos is not None:
        return f"{pos.abspath}:{pos.line}:{pos.column}: {text}"
    return text


def source_excerpt(exn: BaseException) -> list[str]:
    """The source line of a WDL syntax or validation error with a caret under the span, as
    `miniwdl check` prints it (one excerpt per error of a MultipleValidationErrors). Only for
    the user's own terminal: the controller never echoes a document's text (see below)."""
    import WDL

    if isinstance(exn, WDL.Error.MultipleValidationErrors):
        return [line for error in exn.exceptions for line in source_excerpt(error)]
    if isinstance(exn, WDL.Error.ImportError) and exn.__cause__ is not None:
        return source_excerpt(exn.__cause__)  # the imported document's own error, as miniwdl
    pos, text = getattr(exn, "pos", None), getattr(exn, "source_text", None)
    if not isinstance(exn, (WDL.Error.SyntaxError, WDL.Error.ValidationError)):
        return []
    lines = text.split("\n") if isinstance(text, str) else []
    if pos is None or not 0 < pos.line <= len(lines):
        return []
    line = lines[pos.line - 1].replace("\t", " ")
    end = len(line) + 1 if pos.end_line > pos.line else pos.end_column
    while end > pos.column + 1 and line[end - 2 : end - 1] == " ":
        end -= 1
    return ["    " + line, "    " + " " * (pos.column - 1) + "^" * max(1, end - pos.column)]


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
