"""A stand-in container engine for the tests (installed as ``docker`` first on PATH): ``info``
answers as ``STANDIN_INFO`` says (exit 0 by default), every call's arguments are appended to
``STANDIN_LOG`` as one JSON line, and ``run`` executes the command itself with only the ``-e``
environment (and PATH) in the ``-w`` directory, as a container would; its other options are
recorded, not applied."""

import json
import os
import sys

args = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(args) + "\n")
if args[:1] == ["info"]:
    sys.exit(int(os.environ.get("STANDIN_INFO", "0")))
if args[:1] != ["run"]:
    sys.exit(0)  # rm -f NAME and the like
WITH_VALUE = {"--name", "--cpus", "--memory", "--user", "-v", "-w", "-e"}
env = {"PATH": os.environ["PATH"]}
workdir = None
rest = args[1:]
while rest and rest[0].startswith("-"):
    option = rest.pop(0)
    if option in WITH_VALUE:
        value = rest.pop(0)
        if option == "-e":
            name, _, setting = value.partition("=")
            env[name] = setting
        elif option == "-w":
            workdir = value
image, command = rest[0], rest[1:]
if workdir:
    os.chdir(workdir)
os.execvpe(command[0], command, env)
