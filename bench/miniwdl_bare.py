"""`miniwdl run` with a container backend that runs each task command with bash on the host
(no Docker): the baseline bench/bench_local.py compares the local mode with.

    .venv/bin/python -m bench.miniwdl_bare run WORKFLOW.wdl [miniwdl run arguments...]

The backend is registered under the name ``bare`` in-process (miniwdl finds backends through
entry points; none is installed for this) and selected with
``MINIWDL__SCHEDULER__CONTAINER_BACKEND=bare``.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from WDL import CLI
from WDL.runtime import config, task_container


class BareContainer(task_container.TaskContainer):
    """Task commands run by bash on the host; inputs linked where miniwdl mounts them, and the
    task's environment variables (``--env``, WDL 1.2 ``env`` inputs) exported first."""

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:  # noqa: ARG003
        pass

    @classmethod
    def detect_resource_limits(  # TaskContainer's interface
        cls,
        cfg: config.Loader,  # noqa: ARG003
        logger: logging.Logger,  # noqa: ARG003
    ) -> dict[str, int]:
        return {"cpu": os.cpu_count() or 1, "mem_bytes": 1 << 40}

    def __init__(self, cfg: config.Loader, run_id: str, host_dir: str) -> None:
        super().__init__(cfg, run_id, host_dir)
        self.container_dir = host_dir  # paths in the command are the host's

    def _run(
        self,
        logger: logging.Logger,  # noqa: ARG002 - TaskContainer's interface
        terminating: Callable[[], bool],
        command: str,
    ) -> int:
        for host, mounted in self.input_path_map.items():
            link = mounted.rstrip("/")
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.lexists(link):
                os.symlink(host.rstrip("/"), link)
        script = os.path.join(self.host_dir, "command")
        with open(script, "w") as outfile:  # the task's environment first, as miniwdl's backends
            for name, value in self.runtime_values.get("env", {}).items():  # --env, `env` inputs
                outfile.write(f"export {name}={shlex.quote(value)}\n")
            outfile.write(command)
        with (
            open(self.host_stdout_txt(), "wb") as stdout,
            open(self.host_stderr_txt(), "wb") as stderr,
            self.task_running_context(),
        ):
            process = subprocess.Popen(
                ["bash", script], cwd=self.host_work_dir(), stdout=stdout, stderr=stderr
            )
            while process.poll() is None:
                if terminating():
                    process.kill()
                time.sleep(0.01)
        return process.returncode


def main(argv: list[str]) -> Any:
    task_container._backends["bare"] = BareContainer  # noqa: SLF001 - no entry point to use
    os.environ["MINIWDL__SCHEDULER__CONTAINER_BACKEND"] = "bare"
    return CLI.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
