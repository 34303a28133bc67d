"""The local executor's sandbox: what a local task may see, as a bubblewrap (``bwrap``) command.

miniwdl mounts a task's inputs read-only in its container; locally there is no container, and
the call directory holds links to the user's own files. Under bubblewrap a local task sees only
the system folders (read-only), a fresh ``/tmp``, ``/dev``, ``/proc``, its own call directory
(read-write) and each input, bound read-only where the link to it was (so ``-L`` is false, a
write fails with EROFS whatever the user, and the original is untouched). Pure: the executor
(``local/batch_executor.py``) gathers the links and runs the command.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

INPUTS_DIR = "work/_miniwdl_inputs"  # where task_call.prepare places a call's inputs
# folders a program needs to run (read-only); a link among them (/bin -> usr/bin) stays a link
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")

_MEMBER = re.compile(r"^\s*(\d+)\) call=(.*);;$")


def call_dir_of(script: str, array_index: str | None = None) -> str | None:
    """The call directory a job's script runs in: ``controller/task_call.py:job_script``'s first
    line ``cd <call>/work``, or an array child's line of ``core/arrays.py:members_script``;
    None for any other script (the executor does not guess)."""
    lines = script.splitlines()
    if array_index is None:
        words = shlex.split(lines[0]) if lines else []
        if len(words) == 2 and words[0] == "cd" and words[1].endswith("/work"):  # noqa: PLR2004
            return words[1][: -len("/work")]
        return None
    for line in lines:
        member = _MEMBER.match(line)
        if member and member.group(1) == array_index:
            words = shlex.split(member.group(2))
            return words[0] if len(words) == 1 else None
    return None


def bwrap_argv(
    call_dir: str,
    inputs: Mapping[str, str],
    system: Mapping[str, str | None],
    command: Sequence[str],
) -> list[str]:
    """``bwrap`` running ``command`` confined to ``call_dir``.

    ``inputs``: path inside the call directory → the input it links to (bound read-only there,
    on a fresh tmpfs over ``work/_miniwdl_inputs`` so the links themselves are hidden);
    ``system``: the system folders that exist → their link target, or None for a folder.
    The network is shared (as in miniwdl's containers); the sandbox dies with the executor.
    """
    argv = ["bwrap", "--die-with-parent", "--unshare-all", "--share-net"]
    for path, target in sorted(system.items()):
        argv += ["--symlink", target, path] if target is not None else ["--ro-bind", path, path]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    argv += ["--bind", call_dir, call_dir]
    if inputs:
        argv += ["--tmpfs", f"{call_dir}/{INPUTS_DIR}"]
    for inside, source in sorted(inputs.items()):
        argv += ["--ro-bind", source, inside]
    argv += ["--chdir", f"{call_dir}/work", "--", *command]
    return argv
