"""core/errors.py: WDL errors as miniwdl shows them on a terminal (the source excerpt)."""

from __future__ import annotations

import pytest
import WDL

from miniwdl_serverless.core.errors import source_excerpt


@pytest.fixture
def load(tmp_path):
    def loaded(source: str) -> BaseException:
        path = tmp_path / "w.wdl"
        path.write_text(source)
        with pytest.raises(Exception) as caught:
            WDL.load(str(path))
        return caught.value

    return loaded


def test_a_type_error_is_underlined_where_miniwdl_underlines_it(load):
    exn = load("version 1.0\nworkflow w {\n  Int x = [1, 2]\n}\n")
    assert source_excerpt(exn) == ["      Int x = [1, 2]", "              ^^^^^^"]


def test_a_syntax_error_points_at_its_column(load):
    exn = load("version 1.0\nworkflow w {\n  call t { input: x = 1 \n}\n")
    line, caret = source_excerpt(exn)
    assert line == "    }" and caret == "    ^"


def test_several_errors_each_get_an_excerpt(load):
    exn = load("version 1.0\nworkflow w {\n  Int x = [1]\n  Int y = [2]\n}\n")
    assert isinstance(exn, WDL.Error.MultipleValidationErrors)
    assert source_excerpt(exn)[::2] == ["      Int x = [1]", "      Int y = [2]"]


def test_other_errors_have_none():
    assert source_excerpt(ValueError("no")) == []
