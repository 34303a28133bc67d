"""Issue 10: `submit` stages File/Directory inputs that are on the submitter's machine (not on
the stack's file system) to the stack's bucket, content-addressed, and gives the run their
s3:// URIs. The pure part (core/input_staging.py: which paths are staged, keys, Directory
digests, S3's checksums), then the shell (cli/staging.py) over a small fake S3."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from miniwdl_serverless.cli import staging, submit
from miniwdl_serverless.cli.stack import Stack
from miniwdl_serverless.cli.submit import UsageError
from miniwdl_serverless.core import input_staging as core
from miniwdl_serverless.core.input_staging import LOCAL, ON_EFS, URI, ObjectChecksum
from tests.unit.test_stack_bucket import FakeClients

MiB = 1024 * 1024
BUCKET = "stack-bucket"


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# ---- which paths are staged -----------------------------------------------------------------


@pytest.mark.parametrize(
    "given, root, cwd, where, path",
    [
        ("s3://bucket/reads.bam", "/mnt/efs", "/home/me", URI, "s3://bucket/reads.bam"),
        ("https://host/ref.fa", "/mnt/efs", "/home/me", URI, "https://host/ref.fa"),
        ("/mnt/efs/data/a.bam", "/mnt/efs", "/home/me", ON_EFS, "/mnt/efs/data/a.bam"),
        ("/mnt/efs", "/mnt/efs", "/home/me", ON_EFS, "/mnt/efs"),
        ("/mnt/efs/data/a.bam", "/mnt/efs/", "/home/me", ON_EFS, "/mnt/efs/data/a.bam"),
        ("../efs/a.bam", "/mnt/efs", "/mnt/x", ON_EFS, "/mnt/efs/a.bam"),  # made absolute
        ("/mnt/efsx/a.bam", "/mnt/efs", "/home/me", LOCAL, "/mnt/efsx/a.bam"),
        ("/mnt/efs/../../home/a.bam", "/mnt/efs", "/", LOCAL, "/home/a.bam"),
        ("/home/me/a.bam", "/mnt/efs", "/", LOCAL, "/home/me/a.bam"),
        ("reads.bam", "/mnt/efs", "/home/me", LOCAL, "/home/me/reads.bam"),  # as miniwdl run
        ("./d/../reads.bam", "/mnt/efs", "/home/me", LOCAL, "/home/me/reads.bam"),
        ("//home/me/a.bam", "/mnt/efs", "/", LOCAL, "/home/me/a.bam"),
        # a stack whose "EFS" is the whole machine (the embedded AWS): nothing is local
        ("/home/me/a.bam", "/", "/", ON_EFS, "/home/me/a.bam"),
        ("a.bam", "/", "/home/me", ON_EFS, "/home/me/a.bam"),
    ],
)
def test_where_an_input_path_is(given, root, cwd, where, path):
    located = core.locate(given, False, root, cwd)
    assert (located.where, located.path, located.given) == (where, path, given)


NESTED = """
version 1.2
struct Sample { String id  File reads  Array[File] extra }
workflow w {
  input {
    File one
    Array[File] many
    Map[String, File] by_name
    Pair[File, Directory] pair
    Sample sample
    Directory? refs
    File? unset
    String not_a_file = "/home/me/not_a_file"
  }
}
"""


def parsed_env(tmp_path: Path, inputs: dict) -> tuple:
    (tmp_path / "w.wdl").write_text(NESTED)
    loaded = submit.load_workflow(str(tmp_path / "w.wdl"))
    return submit.parse_inputs(loaded.doc, [], json.dumps(inputs), [], [], None)


INPUTS = {
    "w.one": "/home/me/one.txt",
    "w.many": ["/mnt/efs/a.txt", "rel.txt", "s3://elsewhere/b.txt"],
    "w.by_name": {"x": "/home/me/x.txt"},
    "w.pair": {"left": "/home/me/left.txt", "right": "/home/me/dir"},
    "w.sample": {"id": "s1", "reads": "/home/me/r.bam", "extra": ["/mnt/efs/e.txt"]},
    "w.refs": "/mnt/efs/refs",
    "w.not_a_file": "/home/me/string",
}


def test_every_file_and_directory_value_is_found_at_any_depth(tmp_path):
    _, env = parsed_env(tmp_path, INPUTS)
    located = core.locate_all(staging.input_paths(env), "/mnt/efs", "/home/me")
    local = {key: p.path for key, p in located.items() if p.where == LOCAL}
    assert local == {
        ("/home/me/one.txt", False): "/home/me/one.txt",
        ("rel.txt", False): "/home/me/rel.txt",
        ("/home/me/x.txt", False): "/home/me/x.txt",
        ("/home/me/left.txt", False): "/home/me/left.txt",
        ("/home/me/dir", True): "/home/me/dir",  # a Directory, as its type says
        ("/home/me/r.bam", False): "/home/me/r.bam",
    }  # never a String, whatever it looks like
    passed = {key for key, p in located.items() if p.where != LOCAL}
    assert passed == {
        ("/mnt/efs/a.txt", False),
        ("s3://elsewhere/b.txt", False),
        ("/mnt/efs/e.txt", False),
        ("/mnt/efs/refs", True),
    }


def test_no_stage_names_what_it_refuses():
    local = [core.locate("/home/me/r.bam", False, "/mnt/efs", "/")]
    message = core.refusal(local, "/mnt/efs")
    assert message.startswith("--no-stage: File /home/me/r.bam is on this machine")
    assert "under /mnt/efs" in message
    many = [core.locate(f"/home/me/{i}", i % 2 == 1, "/mnt/efs", "/") for i in range(7)]
    assert "Directory /home/me/1" in core.refusal(many, "/mnt/efs")
    assert "and 2 more are on this machine" in core.refusal(many, "/mnt/efs")


# ---- keys and digests -----------------------------------------------------------------------


def digest_of(data: bytes, chunk: int = 1 << 20) -> core.FileDigest:
    digest = core.ContentDigest(len(data))
    for start in range(0, len(data), chunk):
        digest.update(data[start : start + chunk])
    found = digest.finish()
    assert found is not None
    return found


def test_a_file_key_is_its_content_sha256_and_name():
    digest = digest_of(b"ACGT\n")
    content = hashlib.sha256(b"ACGT\n").hexdigest()
    assert core.file_key(digest, "reads.fa") == f"inputs/{content}/reads.fa"
    assert digest.checksum == ObjectChecksum(sha256_b64(b"ACGT\n"), 5)  # one PutObject


def test_a_directory_key_is_its_listing_digest_and_name():
    listing = core.directory_digest([("a.txt", "1" * 64)])
    assert core.directory_key(listing, "refs") == f"inputs/{listing}/refs/"  # the input's URI
    assert core.directory_key(listing, "refs", "sub/b.txt") == f"inputs/{listing}/refs/sub/b.txt"


def test_a_directory_digest_is_a_canonical_listing_of_paths_and_file_digests():
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    digest = core.directory_digest([("x/b.txt", b), ("a.txt", a)])
    canonical = '{"files":[["a.txt","%s"],["x/b.txt","%s"]],"miniwdl_serverless_directory":1}'
    assert digest == hashlib.sha256((canonical % (a, b)).encode()).hexdigest()  # the format
    assert digest == core.directory_digest([("a.txt", a), ("x/b.txt", b)])  # any order
    assert digest != core.directory_digest([("a.txt", b), ("x/b.txt", a)])  # content
    assert digest != core.directory_digest([("a.txt", a), ("y/b.txt", b)])  # paths
    assert digest != core.directory_digest([("a.txt", a)])  # files
    assert core.directory_digest([]) == core.directory_digest([])  # an empty Directory


@pytest.mark.parametrize("size", [0, 1, 8 * MiB - 1, 8 * MiB, 100 * 1024 * MiB, 5 * 1024**4])
def test_part_sizes_are_those_boto3s_transfer_manager_uses(size):
    from s3transfer.utils import ChunksizeAdjuster

    part = core.part_size(size)
    if size < core.MULTIPART_THRESHOLD:
        assert part is None
    else:
        assert part == ChunksizeAdjuster().adjust_chunksize(core.BASE_PART_SIZE, size)
        assert -(-size // part) <= core.MAX_PARTS


def test_a_large_file_gets_s3s_composite_checksum_however_it_is_read():
    data = os.urandom(8 * MiB) + b"tail" * 1000  # two parts of 8 MiB and the rest
    parts = [data[: 8 * MiB], data[8 * MiB :]]
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    expected = ObjectChecksum(base64.b64encode(composite).decode(), len(data), 2)
    for chunk in (1 << 20, 3 * 1000 * 1000, 8 * MiB, len(data)):  # part boundaries inside reads
        digest = digest_of(data, chunk)
        assert digest.checksum == expected, chunk
        assert digest.sha256 == hashlib.sha256(data).hexdigest()  # the key: the content's


def test_a_file_that_changes_while_read_has_no_digest():
    digest = core.ContentDigest(10)
    digest.update(b"12345")
    assert digest.finish() is None


LARGE = 9 * MiB
COMPOSITE = ObjectChecksum("c29tZSBkaWdlc3Q=", LARGE, 2)


@pytest.mark.parametrize(
    "expected, head, matches",
    [
        (ObjectChecksum("d2hvbGU=", 5), {"ChecksumSHA256": "d2hvbGU=", "ContentLength": 5}, True),
        (ObjectChecksum("d2hvbGU=", 5), {"ChecksumSHA256": "d2hvbGU="}, True),
        (ObjectChecksum("d2hvbGU=", 5), {"ChecksumSHA256": "b3RoZXI=", "ContentLength": 5}, False),
        (ObjectChecksum("d2hvbGU=", 5), {"ChecksumSHA256": "d2hvbGU=", "ContentLength": 6}, False),
        (ObjectChecksum("d2hvbGU=", 5), {"ChecksumSHA256": "d2hvbGU=-2"}, False),  # parts
        (ObjectChecksum("d2hvbGU=", 5), {"ContentLength": 5}, False),  # no SHA-256 kept
        (COMPOSITE, {"ChecksumSHA256": "c29tZSBkaWdlc3Q=-2", "ContentLength": LARGE}, True),
        (COMPOSITE, {"ChecksumSHA256": "c29tZSBkaWdlc3Q=", "ContentLength": LARGE}, True),
        (COMPOSITE, {"ChecksumSHA256": "c29tZSBkaWdlc3Q=-3", "ContentLength": LARGE}, False),
        # the plain SHA-256 of a small object holding the parts' digests: not the file
        (COMPOSITE, {"ChecksumSHA256": "c29tZSBkaWdlc3Q=", "ContentLength": 64}, False),
        (COMPOSITE, {"ChecksumSHA256": "c29tZSBkaWdlc3Q="}, False),
    ],
)
def test_an_object_already_there_is_taken_only_with_s3s_checksum_of_this_content(
    expected, head, matches
):
    assert expected.matches(head) is matches


def test_names_that_cannot_be_keys():
    assert core.key_problem("inputs/" + "0" * 64 + "/reads.bam") is None
    assert "not valid UTF-8" in str(core.key_problem("inputs/x/" + os.fsdecode(b"\xff.txt")))
    assert "more than S3's 1024" in str(core.key_problem("inputs/x/" + "a" * 1020))
    assert core.staged_name("/home/me/dir/") == "dir" and core.staged_name("/") == "root"


def test_the_summary():
    assert core.staging_summary(3, 1_234_567_890, 2) == "staged 3 files (1.2 GB), 2 already there"
    assert core.staging_summary(1, 12, 0) == "staged 1 file (12 B), 0 already there"
    assert core.staging_summary(0, 0, 5) == "staged 0 files, 5 already there"
    assert core.human_size(999) == "999 B" and core.human_size(1500) == "1.5 kB"


# ---- the shell: files, directories and links ------------------------------------------------


class FakeS3:
    """head_object, put_object and upload_file of one bucket, keeping S3's SHA-256 checksum as
    S3 does for uploads with ChecksumAlgorithm=SHA256 (composite, '-<parts>', in parts)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.uploads: list[str] = []

    def head_object(self, Bucket: str, Key: str, ChecksumMode: str | None = None) -> dict:
        from botocore.exceptions import ClientError

        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        return {k: v for k, v in self.objects[Key].items() if k != "Body"}

    def upload_file(self, Filename, Bucket, Key, ExtraArgs, Config, Callback=None) -> None:
        assert Bucket == BUCKET and ExtraArgs == {"ChecksumAlgorithm": "SHA256"}
        data = Path(Filename).read_bytes()
        if len(data) >= Config.multipart_threshold:
            size = Config.multipart_chunksize
            parts = [data[i : i + size] for i in range(0, len(data), size)]
            joined = b"".join(hashlib.sha256(p).digest() for p in parts)
            checksum = f"{sha256_b64(joined)}-{len(parts)}"
        else:
            checksum = sha256_b64(data)
        self.objects[Key] = {"ChecksumSHA256": checksum, "ContentLength": len(data), "Body": data}
        self.uploads.append(Key)
        if Callback:
            Callback(len(data))


def stack() -> Stack:
    return Stack("arn:aws:states:us-east-1:1:stateMachine:s", name="st", bucket=BUCKET,
                 _function_env={"MSLS_EFS_ROOT": "/mnt/efs"})  # fmt: skip


class Lines:
    def __init__(self, tty: bool = False):
        self.text, self.tty = "", tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty


def stage(s3: FakeS3, env, stage_inputs: bool = True, out: Lines | None = None):
    progress = staging.Progress(out or Lines())  # type: ignore[arg-type]
    return staging.stage_local_inputs(FakeClients(s3), stack(), env, stage_inputs, progress)  # type: ignore[arg-type]


def test_local_inputs_become_s3_uris_and_the_rest_stays(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "dir" / "sub").mkdir(parents=True)
    for name in ("one.txt", "rel.txt", "x.txt", "left.txt", "r.bam"):
        (home / name).write_text(f"content of {name}\n")
    (home / "dir" / "a.txt").write_text("a\n")
    (home / "dir" / "sub" / "b.txt").write_text("b\n")
    inputs = json.loads(json.dumps(INPUTS).replace("/home/me", str(home)))
    target, env = parsed_env(tmp_path, inputs)
    monkeypatch.chdir(home)
    s3, out = FakeS3(), Lines()
    sent = submit.input_json(target, stage(s3, env, out=out))

    def uri(name: str) -> str:
        digest = hashlib.sha256(f"content of {name}\n".encode()).hexdigest()
        return f"s3://{BUCKET}/inputs/{digest}/{name}"

    a, b = hashlib.sha256(b"a\n").hexdigest(), hashlib.sha256(b"b\n").hexdigest()
    listing = core.directory_digest([("a.txt", a), ("sub/b.txt", b)])
    assert sent == {
        "w.one": uri("one.txt"),
        "w.many": ["/mnt/efs/a.txt", uri("rel.txt"), "s3://elsewhere/b.txt"],
        "w.by_name": {"x": uri("x.txt")},
        "w.pair": {"left": uri("left.txt"), "right": f"s3://{BUCKET}/inputs/{listing}/dir/"},
        "w.sample": {"id": "s1", "reads": uri("r.bam"), "extra": ["/mnt/efs/e.txt"]},
        "w.refs": "/mnt/efs/refs",
        "w.not_a_file": str(home / "string"),
    }
    assert sorted(s3.uploads) == sorted(
        [u.split(f"{BUCKET}/", 1)[1] for u in (uri(n) for n in ("one.txt", "rel.txt", "x.txt"))]
        + [uri("left.txt").split(f"{BUCKET}/", 1)[1], uri("r.bam").split(f"{BUCKET}/", 1)[1]]
        + [f"inputs/{listing}/dir/a.txt", f"inputs/{listing}/dir/sub/b.txt"]
    )
    assert s3.objects[f"inputs/{listing}/dir/sub/b.txt"]["Body"] == b"b\n"
    assert out.text.splitlines()[-1].startswith("staged 7 files (")
    assert "staging" not in out.text  # per-file lines only on a terminal

    again, out = FakeS3(), Lines()
    again.objects = dict(s3.objects)
    assert submit.input_json(target, stage(again, env, out=out)) == sent
    assert again.uploads == []  # all already there
    assert out.text == "staged 0 files, 7 already there\n"


def test_an_object_already_at_the_key_with_another_content_is_replaced(tmp_path):
    (tmp_path / "r.txt").write_text("genuine\n")
    _, env = parsed_env(tmp_path, only_one(str(tmp_path / "r.txt")))
    key = "inputs/" + hashlib.sha256(b"genuine\n").hexdigest() + "/r.txt"
    s3 = FakeS3()
    planted = {"ChecksumSHA256": sha256_b64(b"planted"), "ContentLength": 7, "Body": b"planted"}
    s3.objects[key] = planted  # someone who may write the bucket wrote it under that name
    stage(s3, env)
    assert s3.uploads == [key] and s3.objects[key]["Body"] == b"genuine\n"


def test_a_large_file_goes_in_parts_and_shows_progress_on_a_terminal(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (9 * MiB))
    _, env = parsed_env(tmp_path, only_one(str(big)))
    s3, out = FakeS3(), Lines(tty=True)
    stage(s3, env, out=out)
    (key,) = s3.uploads
    assert s3.objects[key]["ChecksumSHA256"].endswith("-2")  # two parts of 8 MiB
    lines = out.text.split("\n")
    assert lines[0] == f"reading {big} (9.4 MB)" and lines[1] == f"staging {big} (9.4 MB)"
    assert lines[2] == "\r  100% of 9.4 MB"  # a percentage, rewritten in place
    assert lines[3:] == ["staged 1 file (9.4 MB), 0 already there", ""]


def only_one(path: str) -> dict:
    """Inputs with one local File (w.one); everything else on the stack's file system."""
    return {
        "w.one": path,
        "w.many": [],
        "w.by_name": {},
        "w.pair": {"left": "/mnt/efs/l", "right": "/mnt/efs/d"},
        "w.sample": {"id": "s", "reads": "/mnt/efs/r", "extra": []},
    }


def test_no_stage_refuses_a_local_file_and_uploads_nothing(tmp_path):
    (tmp_path / "r.txt").write_text("r\n")
    _, env = parsed_env(tmp_path, only_one(str(tmp_path / "r.txt")))
    s3 = FakeS3()
    with pytest.raises(UsageError, match=rf"^--no-stage: File {tmp_path}/r.txt is on this"):
        stage(s3, env, stage_inputs=False)
    assert s3.uploads == []
    target, efs_only = parsed_env(tmp_path, only_one("/mnt/efs/r.txt"))
    sent = submit.input_json(target, stage(s3, efs_only, stage_inputs=False))
    assert sent["w.one"] == "/mnt/efs/r.txt"  # nothing local: nothing refused


def test_a_missing_local_file_is_named(tmp_path):
    _, env = parsed_env(tmp_path, only_one(str(tmp_path / "nope.bam")))
    with pytest.raises(UsageError, match=r"File input .*nope.bam: no such file on this machine"):
        stage(FakeS3(), env)
    (tmp_path / "adir").mkdir()
    _, env = parsed_env(tmp_path, only_one(str(tmp_path / "adir")))
    with pytest.raises(UsageError, match=r"File input .*adir: not a file on this machine"):
        stage(FakeS3(), env)


def test_a_linked_input_file_is_followed_and_keeps_the_links_name(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "real-name.fa").write_text(">chr1\nACGT\n")
    (tmp_path / "ref.fa").symlink_to(tmp_path / "data" / "real-name.fa")
    target, env = parsed_env(tmp_path, only_one(str(tmp_path / "ref.fa")))
    sent = submit.input_json(target, stage(FakeS3(), env))
    digest = hashlib.sha256(b">chr1\nACGT\n").hexdigest()
    assert sent["w.one"] == f"s3://{BUCKET}/inputs/{digest}/ref.fa"


def tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a\n")
    (root / "sub" / "b.txt").write_text("b\n")
    return root


def test_a_directory_walk_follows_links_inside_it_only(tmp_path):
    top = tree(tmp_path / "top")
    (top / "a-link").symlink_to("a.txt")
    (top / "sub-link").symlink_to(top / "sub")  # absolute, but inside
    assert sorted(staging.walk_directory(str(top), "top")) == [
        ("a-link", str(top / "a.txt")),  # staged as a copy at the link's path
        ("a.txt", str(top / "a.txt")),
        ("sub-link/b.txt", str(top / "sub" / "b.txt")),
        ("sub/b.txt", str(top / "sub" / "b.txt")),
    ]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda top, out: (top / "out").symlink_to(out), "out is a link out of the Directory"),
        (lambda top, _: (top / "sub" / "up").symlink_to(".."), "sub/up is a link to a directory "
         "that contains it"),
        (lambda top, _: (top / "dangling").symlink_to("nowhere"), "dangling is a link to nothing"),
        (lambda top, _: os.mkfifo(top / "fifo"), "fifo is not a regular file or directory"),
    ],
)  # fmt: skip
def test_a_directory_walk_refuses_links_out_loops_and_special_files(tmp_path, make, message):
    top = tree(tmp_path / "top")
    (tmp_path / "outside.txt").write_text("secret\n")
    make(top, tmp_path / "outside.txt")
    with pytest.raises(UsageError, match=rf"^Directory input top: {message}"):
        staging.walk_directory(str(top), "top")


def test_the_same_tree_anywhere_has_the_same_digest(tmp_path):
    first, second = tree(tmp_path / "one" / "refs"), tree(tmp_path / "two" / "refs")
    progress = staging.Progress(Lines())  # type: ignore[arg-type]
    keys = [
        staging.scan(core.locate(str(p), True, "/mnt/efs", "/"), "/mnt/efs", progress)[0]
        for p in (first, second)
    ]
    assert keys[0] == keys[1] and keys[0].endswith("/refs/")
    (second / "sub" / "b.txt").write_text("changed\n")
    changed = staging.scan(core.locate(str(second), True, "/mnt/efs", "/"), "/mnt/efs", progress)
    assert changed[0] != keys[0]
