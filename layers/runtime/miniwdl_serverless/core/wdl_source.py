"""Loading WDL documents: fetch once at start (through the WorkflowSources port) into a
digest-checked bundle, parse from it later.

The bundle (every document's text keyed by its resolved URI or path) is written to the run
directory. Tasks can write anywhere on EFS, so the controller checks the bundle's SHA-256,
kept in DynamoDB, before it trusts it again: anything on EFS is untrusted input
(docs/architecture.md, design rule 4).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import re
import tempfile
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import WDL
import WDL.Zip

from miniwdl_serverless.core import wdl_extensions
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.stack_bucket import verify_staged

INLINE_KEY = "/inline/workflow.wdl"
MAX_SOURCE_BYTES = 16 * 1024 * 1024

wdl_extensions.install()  # every document parsed here may use Object (core/wdl_extensions.py)


@dataclass
class SourceBundle:
    """The text of a workflow's main document and all its imports."""

    main: str
    sources: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"main": self.main, "sources": self.sources}, sort_keys=True)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str, digest: str) -> SourceBundle:
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            message = "the run's WDL bundle on EFS changed after submission"
            raise RunError.of("TamperedState", message)
        data = json.loads(text)
        return cls(main=data["main"], sources=data["sources"])


def resolve_import(uri: str, importer: WDL.Document | None) -> str:
    """The key of an imported document: absolute URI or normalized absolute path."""
    if "://" in uri:
        return uri
    base = importer.pos.abspath if importer is not None else None
    if base and base.startswith("s3://"):  # urljoin does not resolve relative to s3:// URIs
        return "s3://" + posixpath.normpath(
            posixpath.join(posixpath.dirname(base[len("s3://") :]), uri)
        )
    if base and "://" in base:
        return urllib.parse.urljoin(base, uri)
    if os.path.isabs(uri):
        return posixpath.normpath(uri)
    return posixpath.normpath(posixpath.join(posixpath.dirname(base) if base else os.getcwd(), uri))


# Reads one document by URI or path: at most ``limit`` + 1 bytes (so "too large" is seen).
# The WorkflowSources port (adapters/sources.py on AWS and locally).
Fetch = Callable[[str, int], bytes]


def load_document(bundle: SourceBundle) -> WDL.Document:
    """Parse and typecheck the bundle's main document, resolving imports inside the bundle."""

    async def read_source(
        uri: str,
        path: list[str],  # noqa: ARG001 - miniwdl's read_source signature: import search path
        importer: WDL.Document | None,
    ) -> WDL.ReadSourceResult:
        key = uri if importer is None and uri == bundle.main else resolve_import(uri, importer)
        if key not in bundle.sources:
            raise FileNotFoundError(key)
        return WDL.ReadSourceResult(source_text=bundle.sources[key], abspath=key)

    return _load(bundle.main, read_source)


def fetch_and_load(
    workflow: str | None,
    inline_source: str | None,
    fetch: Fetch,
    staged_sha256: str | None = None,
) -> tuple[WDL.Document, SourceBundle]:
    """Fetch the main document and its imports, then parse and typecheck them. A workflow
    ending in ``.zip`` is a miniwdl source archive (``miniwdl zip``: MANIFEST.json, main WDL,
    imports), unpacked and loaded as if its files were local; with ``staged_sha256`` (a staged
    archive's content-addressed name, core/stack_bucket.py) its bytes must have that SHA-256."""
    if workflow and urllib.parse.urlparse(workflow).path.endswith(".zip"):
        return _fetch_and_load_zip(workflow, fetch, staged_sha256)
    main = INLINE_KEY if inline_source is not None else resolve_import(workflow or "", None)
    bundle = SourceBundle(main=main)
    if inline_source is not None:
        bundle.sources[main] = inline_source

    async def read_source(
        uri: str,
        path: list[str],  # noqa: ARG001 - miniwdl's read_source signature: import search path
        importer: WDL.Document | None,
    ) -> WDL.ReadSourceResult:
        key = main if importer is None else resolve_import(uri, importer)
        if key not in bundle.sources:
            try:
                text = fetch(key, MAX_SOURCE_BYTES).decode()
            except Exception as exn:
                if importer is None:
                    message = f"cannot read workflow {key}: {exn}"
                    raise RunError.of("WorkflowNotFound", message) from exn
                raise
            if len(text) > MAX_SOURCE_BYTES:
                raise RunError.of("WorkflowTooLarge", f"{key} exceeds 16 MiB")
            bundle.sources[key] = text
        return WDL.ReadSourceResult(source_text=bundle.sources[key], abspath=key)

    return _load(main, read_source), bundle


def _fetch_and_load_zip(
    workflow: str, fetch: Fetch, staged_sha256: str | None
) -> tuple[WDL.Document, SourceBundle]:
    """Documents from a miniwdl zip, keyed ``/<archive name>/<path in the archive>``."""
    try:
        data = fetch(workflow, MAX_SOURCE_BYTES)
    except Exception as exn:
        raise RunError.of("WorkflowNotFound", f"cannot read workflow {workflow}: {exn}") from exn
    if len(data) > MAX_SOURCE_BYTES:
        raise RunError.of("WorkflowTooLarge", f"{workflow} exceeds 16 MiB")
    if staged_sha256 is not None:  # checked before the archive is even opened
        verify_staged(workflow, data, staged_sha256)
    with tempfile.TemporaryDirectory(prefix="msls_zip_") as tmp:
        archive = os.path.join(tmp, "source.zip")
        with open(archive, "wb") as outfile:
            outfile.write(data)
        try:
            with zipfile.ZipFile(archive) as zf:
                if sum(info.file_size for info in zf.infolist()) > 4 * MAX_SOURCE_BYTES:
                    raise RunError.of("WorkflowTooLarge", f"{workflow} unpacks to more than 64 MiB")
        except zipfile.BadZipFile as exn:
            raise RunError.of("WorkflowNotFound", f"{workflow} is not a zip archive") from exn
        with WDL.Zip.unpack(archive, tempdir_parent=tmp) as unpacked:
            root = os.path.realpath(unpacked.dir)
            prefix = "/" + re.sub(
                r"[^A-Za-z0-9_.-]", "_", posixpath.basename(urllib.parse.urlparse(workflow).path)
            )
            main = (
                prefix + "/" + os.path.relpath(unpacked.main_wdl, unpacked.dir).replace(os.sep, "/")
            )

            def read_inside(key: str, limit: int) -> bytes:
                if not key.startswith(prefix + "/"):
                    raise FileNotFoundError(f"{key} (imports must be inside the archive)")
                path = os.path.realpath(os.path.join(root, key[len(prefix) + 1 :]))
                if os.path.commonpath([root, path]) != root:
                    raise FileNotFoundError(f"{key} (outside the archive)")
                with open(path, "rb") as infile:
                    return infile.read(limit + 1)

            return fetch_and_load(main, None, fetch=read_inside)


def _load(main: str, read_source: Any) -> WDL.Document:
    doc = asyncio.run(
        WDL.Tree._load_async(main, path=[], read_source=read_source, check_quant=True)
    )
    WDL.Walker.SetParents()(doc)  # as WDL.load does: a task's digest (call cache) needs them
    return doc


SOURCE_PART = re.compile(r"[^\x00-\x1f/]{1,255}")


def source_copy_names(keys: list[str]) -> dict[str, str]:
    """miniwdl's ``wdl/`` layout: each source document at its path relative to the folder all
    of them share (``main.wdl``, ``lib/tasks.wdl``). A name that would not make a plain
    relative path (``..``, control characters) gets a flattened one instead."""
    if not keys:
        return {}
    shared = posixpath.dirname(os.path.commonprefix(keys))
    names = {}
    for key in keys:
        relative = key[len(shared) :].lstrip("/")
        parts = relative.split("/")
        if len(relative) > 1024 or not all(
            part not in (".", "..") and SOURCE_PART.fullmatch(part) for part in parts
        ):
            relative = re.sub(r"[^A-Za-z0-9_.-]", "_", key.strip("/"))[-200:]
        names[key] = relative
    return names
