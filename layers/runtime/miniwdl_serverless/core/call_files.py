"""The names of an attempt's files in its call directory, miniwdl's own
(``WDL/runtime/task_container.py``: ``host_work_dir``, ``host_stdout_txt``,
``host_stderr_txt``): the first attempt runs in ``work/`` with ``stdout.txt`` and
``stderr.txt``; attempt k > 0 (0-based, ``task.attempt``) in ``work{k+1}/`` with
``stdout{k+1}.txt`` and ``stderr{k+1}.txt``. An earlier attempt's files stay where they are.
``command`` is one file, the newest attempt's (miniwdl writes it again for each try)."""

from __future__ import annotations

import re

COMMAND = "command"
INPUTS_DIR = "_miniwdl_inputs"  # in the work directory: the links (or copies) to the inputs
_WORK = re.compile(r"^work(?:([2-9]|[1-9][0-9]+))?$")


def _suffix(attempt: int) -> str:
    if attempt < 0:
        raise ValueError(f"no attempt {attempt}")
    return "" if attempt == 0 else str(attempt + 1)


def work_dir(attempt: int) -> str:
    """``work``, ``work2``, ``work3``…"""
    return f"work{_suffix(attempt)}"


def stdout_txt(attempt: int) -> str:
    """``stdout.txt``, ``stdout2.txt``…"""
    return f"stdout{_suffix(attempt)}.txt"


def stderr_txt(attempt: int) -> str:
    """``stderr.txt``, ``stderr2.txt``…"""
    return f"stderr{_suffix(attempt)}.txt"


def streams(attempt: int) -> tuple[str, str]:
    """(stdout, stderr) of the attempt."""
    return stdout_txt(attempt), stderr_txt(attempt)


def attempt_of_work_dir(name: str) -> int | None:
    """The attempt whose working directory is named ``name`` (None: not one)."""
    found = _WORK.match(name)
    if found is None:
        return None
    return 0 if found.group(1) is None else int(found.group(1)) - 1


def stream_attempt(name: str, stream: str) -> int | None:
    """The attempt of ``stdout…txt``/``stderr…txt`` ``name`` of ``stream`` (None: not one)."""
    found = re.fullmatch(rf"{re.escape(stream)}(?:([2-9]|[1-9][0-9]+))?\.txt", name)
    if found is None:
        return None
    return 0 if found.group(1) is None else int(found.group(1)) - 1
