"""The local executor's sandbox: what a local task may see, as a bubblewrap (``bwrap``) command.

miniwdl mounts a task's inputs read-only in its container; locally there is no container, and
the call directory holds links to the user's own files. Under bubblewrap a local task sees only
the system folders (read-only), a fresh ``/tmp``, ``/dev``, ``/proc``, its own call directory
(read-write) and each input, bound read-only where the link to it was (so ``-L`` is false, a
write fails with EROFS whatever the user, and the original is untouched). Pure: the executor
(``local/batch_executor.py``) gathers the links and runs the command.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence

from miniwdl_serverless.core import call_files

# folders a program needs to run (read-only); a link among them (/bin -> usr/bin) stays a link
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")

_MEMBER = re.compile(r"^\s*(\d+)\) call=(.*);;$")


def work_dir_of(script: str, array_index: str | None = None) -> str | None:
    """The working directory a job's script runs in: ``controller/task_call.py:job_script``'s
    first line ``cd <call>/work`` (a retry's ``<call>/work2``…), or an array child's
    ``<call>/work`` from its line of ``core/arrays.py:members_script``; None for any other
    script (the executor does not guess)."""
    lines = script.splitlines()
    if array_index is None:
        words = shlex.split(lines[0]) if lines else []
        if len(words) == 2 and words[0] == "cd":  # noqa: PLR2004
            parent, name = os.path.split(words[1])
            if parent and call_files.attempt_of_work_dir(name) is not None:
                return words[1]
        return None
    member = _member_call_dir(lines, array_index)
    return None if member is None else os.path.join(member, call_files.work_dir(0))


def call_dir_of(script: str, array_index: str | None = None) -> str | None:
    """The call directory a job's script runs in (``work_dir_of``'s parent)."""
    work = work_dir_of(script, array_index)
    return None if work is None else os.path.dirname(work)


def _member_call_dir(lines: list[str], array_index: str) -> str | None:
    for line in lines:
        member = _MEMBER.match(line)
        if member and member.group(1) == array_index:
            words = shlex.split(member.group(2))
            return words[0] if len(words) == 1 else None
    return None


def bwrap_argv(
    work_dir: str,
    inputs: Mapping[str, str],
    system: Mapping[str, str | None],
    command: Sequence[str],
) -> list[str]:
    """``bwrap`` running ``command`` in ``work_dir``, confined to its call directory.

    ``inputs``: path inside the call directory → the input it links to (bound read-only there,
    on a fresh tmpfs over ``<work_dir>/_miniwdl_inputs`` so the links themselves are hidden);
    ``system``: the system folders that exist → their link target, or None for a folder.
    The network is shared (as in miniwdl's containers); the sandbox dies with the executor.
    """
    call_dir = os.path.dirname(work_dir)
    argv = ["bwrap", "--die-with-parent", "--unshare-all", "--share-net"]
    for path, target in sorted(system.items()):
        argv += ["--symlink", target, path] if target is not None else ["--ro-bind", path, path]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    argv += ["--bind", call_dir, call_dir]
    if inputs:
        argv += ["--tmpfs", os.path.join(work_dir, call_files.INPUTS_DIR)]
    for inside, source in sorted(inputs.items()):
        argv += ["--ro-bind", source, inside]
    argv += ["--chdir", work_dir, "--", *command]
    return argv
