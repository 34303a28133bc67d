"""Workflows given as a miniwdl zip (what `submit` stages): the start function unpacks the
archive and loads the main document and its imports into the digest-checked bundle."""

from __future__ import annotations

import io
import logging
import zipfile

import pytest
import WDL
import WDL.Zip

from miniwdl_serverless.adapters.sources import UriSources
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.wdl_source import fetch_and_load, load_document

FETCH = UriSources().fetch


def make_zip(tmp_path):
    (tmp_path / "src" / "lib").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "util.wdl").write_text("version 1.0\ntask u { command <<< true >>> }\n")
    (tmp_path / "src" / "lib" / "t.wdl").write_text(
        'version 1.0\nimport "../../shared/util.wdl"\ntask t { command <<< echo hi >>> }\n'
    )
    (tmp_path / "src" / "main.wdl").write_text(
        'version 1.0\nimport "lib/t.wdl"\nworkflow main { call t.t }\n'
    )
    doc = WDL.load(str(tmp_path / "src" / "main.wdl"))
    archive = tmp_path / "main.wdl.zip"
    WDL.Zip.build(doc, str(archive), logging.getLogger("test"))
    return archive


def test_zip_loads_main_and_imports(tmp_path):
    archive = make_zip(tmp_path)
    doc, bundle = fetch_and_load(str(archive), None, FETCH)
    assert doc.workflow.name == "main"
    assert bundle.main == "/main.wdl.zip/main.wdl"
    assert (
        len(bundle.sources) == 3
    )  # the import from outside the main's directory came along (__outside_wdl)
    assert all(key.startswith("/main.wdl.zip/") for key in bundle.sources)
    again = load_document(bundle)  # later invocations parse from the bundle alone
    assert [c.name for c in again.workflow.body] == ["t"]


def test_bad_archives(tmp_path):
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(RunError, match="not a zip archive"):
        fetch_and_load(str(tmp_path / "not.zip"), None, FETCH)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("main.wdl", "version 1.0\nworkflow w {}\n")
    (tmp_path / "nomanifest.zip").write_bytes(buffer.getvalue())
    with pytest.raises(WDL.Error.InputError, match="MANIFEST.json"):
        fetch_and_load(str(tmp_path / "nomanifest.zip"), None, FETCH)
    with pytest.raises(RunError, match="cannot read workflow"):
        fetch_and_load(str(tmp_path / "missing.zip"), None, FETCH)
