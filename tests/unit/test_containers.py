"""core/containers.py: which engine runs local tasks, and the engine's command for one job."""

from __future__ import annotations

import logging

import pytest
from WDL.runtime.config import Loader

from miniwdl_serverless.controller.task_call import job_script
from miniwdl_serverless.core import arrays, containers
from miniwdl_serverless.core.containers import ContainerJob, Engine, Mount


def test_auto_picks_the_first_engine_that_answers_info():
    assert containers.choose("auto", lambda program: True) == "docker"
    assert containers.choose("auto", lambda program: program == "podman") == "podman"
    assert containers.choose("auto", lambda program: False) is None


def test_a_named_engine_or_none_is_taken_as_asked():
    asked: list[str] = []
    assert containers.choose("podman", lambda p: asked.append(p) or False) == "podman"
    assert containers.choose("none", lambda p: asked.append(p) or True) is None
    assert asked == []  # the caller checks a named engine itself
    with pytest.raises(ValueError, match="--container is one of"):
        containers.choose("lxc", lambda p: True)


def test_the_run_command_has_every_setting_in_order():
    job = ContainerJob(
        image="ubuntu:22.04",
        name="msls-r1-call-a-0123abcd",
        command=["/bin/bash", "-ec", "cd /runs/r/call-a/work\necho"],
        workdir="/runs/r/call-a/work",
        environment={"B": "2", "A": "x y"},
        mounts=[Mount("/runs/r/call-a", "/runs/r/call-a"), Mount("/d/in.txt", "/d/in.txt", True)],
        vcpus=2,
        memory_mib=2048,
    )
    argv = containers.run_argv(Engine("docker", "1000:1000"), job)
    assert argv == [
        "docker",
        "run",
        "--rm",
        "--name",
        "msls-r1-call-a-0123abcd",
        "--init",
        "--cpus",
        "2",
        "--memory",
        "2048m",
        "--user",
        "1000:1000",
        "-v",
        "/runs/r/call-a:/runs/r/call-a",
        "-v",
        "/d/in.txt:/d/in.txt:ro",
        "-w",
        "/runs/r/call-a/work",
        "-e",
        "A=x y",
        "-e",
        "B=2",
        "ubuntu:22.04",
        "/bin/bash",
        "-ec",
        "cd /runs/r/call-a/work\necho",
    ]


def test_without_as_me_or_limits_nothing_is_added():
    argv = containers.run_argv(Engine("podman"), ContainerJob("img", "n", ["true"]))
    assert argv == ["podman", "run", "--rm", "--name", "n", "--init", "img", "true"]
    assert containers.kill_argv(Engine("podman"), "n") == ["podman", "rm", "-f", "n"]
    as_me = containers.run_argv(Engine("podman", "5:6"), ContainerJob("img", "n", ["true"]))
    assert as_me[6:10] == ["--user", "5:6", "--userns", "keep-id"]


def test_a_mount_path_with_a_colon_is_refused():
    with pytest.raises(ValueError, match="':'"):
        Mount("/a:b", "/a:b").option()


def test_container_names_are_safe_bounded_and_unique_per_job():
    name = containers.container_name("run 1/call-a.b", "0123456789abcdef")
    assert name == "msls-run-1-call-a.b-01234567"
    child = containers.container_name("r-arr", "fedcba98-x", "7")
    assert child == "msls-r-arr-7-fedcba98"
    long = containers.container_name("x" * 300, "0123456789")
    assert len(long) == containers.NAME_LIMIT and long.endswith("-01234567")


def test_resources_come_from_the_requirements_the_overrides_last():
    requirements = [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "1024"},
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "3000"},
        {"type": "GPU", "value": "1"},
    ]
    assert containers.resources_of(requirements) == (4, 3000)
    assert containers.resources_of([]) == (None, None)


def test_mounts_are_the_call_read_write_and_inputs_read_only_once():
    call = "/runs/r/call-a"
    inputs = {
        f"{call}/work/_miniwdl_inputs/0/a.txt": "/data/a.txt",
        f"{call}/work/_miniwdl_inputs/1/b.txt": "/data/a.txt",  # the same file twice
        f"{call}/work/_miniwdl_inputs/2/o.txt": "/runs/r/call-b/work/o.txt",
    }
    assert containers.mounts_for(call, inputs, ["/runs/r"]) == [
        Mount("/runs/r", "/runs/r"),
        Mount(call, call),
        Mount("/data/a.txt", "/data/a.txt", read_only=True),
    ]  # another call's output is under the mounted run directory already
    assert containers.mounts_for(call, inputs)[1:] == [
        Mount("/data/a.txt", "/data/a.txt", read_only=True),
        Mount("/runs/r/call-b/work/o.txt", "/runs/r/call-b/work/o.txt", read_only=True),
    ]


def test_which_directories_a_job_script_needs():
    cfg = Loader(logging.getLogger("test"), [])
    never = lambda path, line: pytest.fail("no index to read")  # noqa: E731
    assert containers.job_mounts(job_script(cfg, "/runs/r/call-a"), None, never) == (
        "/runs/r/call-a",
        None,
    )
    members = arrays.members_script(["/runs/r/call-a", "/runs/r/call-b"])
    assert containers.job_mounts(members, "1", never) == ("/runs/r/call-b", None)
    assert containers.job_mounts("echo hi", None, never) == (None, None)
    retry = job_script(cfg, "/runs/r/call-a", 1)  # a retry's: the same call directory
    assert containers.job_mounts(retry, None, never) == ("/runs/r/call-a", None)


def test_an_array_child_finds_its_call_in_the_index_file():
    script = arrays.array_script("/runs/r 1", "/runs/r 1/_arrays/x.idx")
    assert containers.array_run_dir(script) == ("/runs/r 1", "/runs/r 1/_arrays/x.idx")
    read: list[tuple[str, int]] = []

    def record(path: str, line: int) -> str | None:
        read.append((path, line))
        return "call-s-3   \n"

    assert containers.job_mounts(script, "3", record) == ("/runs/r 1/call-s-3", "/runs/r 1")
    assert read == [("/runs/r 1/_arrays/x.idx", 3)]
    for bad in (None, "", "../x", "/etc", "./a"):
        found = containers.job_mounts(script, "0", lambda path, line, bad=bad: bad)
        assert found == (None, "/runs/r 1")  # the child fails itself, in its run directory
    assert containers.job_mounts(script, None, record) == (None, None)


def test_an_array_child_of_queued_calls_runs_in_its_own_call(tmp_path):
    """The executor's view of a job (local/batch_executor.py:container_job): a child of an
    array of queued calls gets its call directory and inputs mounted, its index and resources."""
    from types import SimpleNamespace

    from miniwdl_serverless.local import batch_executor

    calls = [tmp_path / "call-s-0", tmp_path / "call-s-1"]
    data = tmp_path / "data.txt"
    data.write_text("x")
    for call in calls:
        (call / "work" / "_miniwdl_inputs" / "0").mkdir(parents=True)
    (calls[1] / "work" / "_miniwdl_inputs" / "0" / "data.txt").symlink_to(data)
    script = arrays.members_script([str(c) for c in calls])
    definition = SimpleNamespace(
        container_properties={
            "image": "alpine:3",
            "environment": [{"name": "A", "value": "1"}],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}],
        }
    )
    child = SimpleNamespace(
        job_id="abcdef0123-1",
        job_name="run1-q123-2",
        job_definition=definition,
        array_properties={"index": 1},
        container_overrides={
            "command": ["/bin/bash", "-ec", script],
            "environment": [{"name": "B", "value": "2"}],
            "resourceRequirements": [
                {"type": "VCPU", "value": "3"},
                {"type": "MEMORY", "value": "4000"},
            ],
        },
    )
    spec = batch_executor.container_job(child, parent=object())
    assert spec.image == "alpine:3" and spec.name == "msls-run1-q123-2-1-abcdef01"
    assert spec.workdir == f"{calls[1]}/work"
    assert spec.mounts == [Mount(str(calls[1]), str(calls[1])), Mount(str(data), str(data), True)]
    assert (spec.vcpus, spec.memory_mib) == (3, 4000)
    assert spec.environment == {
        "A": "1",
        "B": "2",
        "AWS_BATCH_JOB_ID": "abcdef0123-1",
        "AWS_BATCH_JOB_ARRAY_INDEX": "1",
    }
    assert spec.command == ["/bin/bash", "-ec", script]
