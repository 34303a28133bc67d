"""The WDL ``Object`` type and write_object(s)/read_object(s), which stock miniwdl lacks
(core/wdl_extensions.py): typechecking with miniwdl after ``install``, and whole runs through
the real controller (task commands with bash)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import WDL

from miniwdl_serverless.core import wdl_extensions

from .harness import Harness

wdl_extensions.install()


def typecheck(body: str, version: str = "1.1") -> WDL.Tree.Document:
    doc = WDL.parse_document(f"version {version}\n{body}")
    doc.typecheck()
    return doc


def type_error(body: str, version: str = "1.1") -> str:
    with pytest.raises((WDL.Error.ValidationError, WDL.Error.MultipleValidationErrors)) as info:
        typecheck(body, version)
    return str(info.value)


# --- typechecking -----------------------------------------------------------------------------


def test_object_declarations_typecheck_in_every_version() -> None:
    body = """
    struct P { String name  Int age }
    workflow w {
      input { Object o  Object? maybe  Array[Object] many  Map[String, Object] keyed }
      Object lit = object { a: 1, b: "two" }
      Object from_map = {"x": "1"}
      P p = object { name: "Jane", age: 29 }
      Object from_struct = p
      P to_struct = o
      Map[String, String] to_map = o
      Array[Object] read = read_objects(write_objects(many))
      Object one = read_object(write_object(p))
      output { Object out = lit  Int a = lit.a  String n = o.name  File f = write_object(o) }
    }
    """
    for version in ("1.0", "1.1", "1.2"):
        doc = typecheck(body, version)
        assert doc.workflow is not None
        types = {d.name: str(d.type) for d in doc.workflow.inputs or []}
        assert types == {
            "o": "Object",
            "maybe": "Object?",
            "many": "Array[Object]",
            "keyed": "Map[String,Object]",
        }


def test_an_object_unified_with_literals_stays_open() -> None:
    doc = typecheck(
        """
        workflow w {
          input { Object o  Boolean b }
          Array[Object] xs = [o, object { a: 1 }]
          Int y = xs[0].a
          String z = (if b then o else object { c: "x" }).anything
          Object s = select_first([o, object { d: 1 }])
        }
        """
    )
    assert doc.workflow is not None
    assert [str(d.expr.type) for d in doc.workflow.body][1:3] == ["Any", "Any"]
    assert str(doc.workflow.body[0].expr.type) == "Array[Object]+"


def test_static_type_errors_stay_errors() -> None:
    assert "Object" in type_error("workflow w { Object o = 5 }")
    assert "Object" in type_error("workflow w { input { Object o } Int i = o }")
    assert "Object" in type_error('workflow w { Object o = {1: "a"} }')  # keys must be Strings
    assert "write_object" in type_error("workflow w { File f = write_object(5) }")
    assert "write_objects" in type_error(
        "workflow w { input { Object o } File f = write_objects(o) }"
    )
    # an optional Object's member needs select_first first, as a struct's does
    type_error("workflow w { input { Object? o } String s = o.a }")
    # an object literal has only the members it was written with
    assert "No such member" in type_error("workflow w { Int b = object { a: 1 }.b }")


def test_a_struct_named_in_the_document_is_unaffected() -> None:
    doc = typecheck("struct Obj { Int a }\nworkflow w { Obj x = object { a: 1 }  Int a = x.a }")
    assert doc.workflow is not None
    assert str(doc.workflow.body[0].type) == "Obj"


def test_a_struct_cannot_take_the_name_object() -> None:
    with pytest.raises(WDL.Error.InvalidType, match="a struct cannot be named Object"):
        typecheck("struct Object { Int a }\nworkflow w { }")


def test_inputs_as_json_objects() -> None:
    doc = typecheck("workflow w { input { Object o  Array[Object] os  Object? none } }")
    assert doc.workflow is not None
    env = WDL.values_from_json(
        {"o": {"a": 1, "b": "x", "c": {"d": [1, 2]}}, "os": [{"k": "v"}], "none": None},
        doc.workflow.available_inputs,
    )
    assert WDL.values_to_json(env) == {
        "o": {"a": 1, "b": "x", "c": {"d": [1, 2]}},
        "os": [{"k": "v"}],
        "none": None,
    }
    with pytest.raises(WDL.Error.InputError, match="Object"):
        WDL.values_from_json({"o": [1]}, doc.workflow.available_inputs)


# --- whole runs through the controller ---------------------------------------------------------

OBJECTS = """
version 1.1
struct P { String name  Int age }
workflow w {
  input { Object obj  Array[Object] rows }
  Object lit = object { a: 10, b: "hello" }
  Map[String, String] as_map = obj
  Object from_map = {"x": "1", "y": "2"}
  P p = object { name: "Jane", age: 29 }
  Object from_struct = p
  P back = from_struct
  call tsv { input: one = obj, many = rows, person = p }
  output {
    Object o = lit
    Int a = lit.a
    String k1 = obj.key_1
    Map[String, String] m = as_map
    String x = from_map.x
    String n = from_struct.name
    P b = back
    Array[String] one_lines = tsv.one_lines
    Array[String] many_lines = tsv.many_lines
    Array[String] person_lines = tsv.person_lines
    Object parsed = tsv.parsed
    Array[Object] parsed_rows = tsv.parsed_rows
    String parsed_value = tsv.parsed.k
  }
}
task tsv {
  input { Object one  Array[Object] many  P person }
  command <<<
    cp ~{write_object(one)} one.tsv
    cp ~{write_objects(many)} many.tsv
    cp ~{write_object(person)} person.tsv
    printf 'k\\tl\\nv\\tw\\n' > back.tsv
    printf 'k\\tl\\n1\\t2\\n3\\t4\\n' > rows.tsv
  >>>
  output {
    Array[String] one_lines = read_lines("one.tsv")
    Array[String] many_lines = read_lines("many.tsv")
    Array[String] person_lines = read_lines("person.tsv")
    Object parsed = read_object("back.tsv")
    Array[Object] parsed_rows = read_objects("rows.tsv")
  }
}
"""


def test_objects_through_a_run(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.start(
        OBJECTS,
        inputs={
            "w.obj": {"key_1": "value_1", "key_2": 2},
            "w.rows": [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}],
        },
    )
    harness.play(harness.execute)
    assert harness.outputs() == {
        "w.o": {"a": 10, "b": "hello"},
        "w.a": 10,
        "w.k1": "value_1",
        "w.m": {"key_1": "value_1", "key_2": "2"},
        "w.x": "1",
        "w.n": "Jane",
        "w.b": {"name": "Jane", "age": 29},
        "w.one_lines": ["key_1\tkey_2", "value_1\t2"],
        "w.many_lines": ["a\tb", "1\t2", "3\t4"],
        "w.person_lines": ["name\tage", "Jane\t29"],
        "w.parsed": {"k": "v", "l": "w"},
        "w.parsed_rows": [{"k": "1", "l": "2"}, {"k": "3", "l": "4"}],
        "w.parsed_value": "v",
    }


def test_write_object_files_end_each_line_with_a_newline(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    source = """
    version 1.1
    workflow w {
      Array[Object] none = []
      output {
        String one = read_string(write_object(object { a: 1, b: true, c: 1.5 })) + "|"
        String empty = read_string(write_objects(none)) + "|"
      }
    }
    """
    harness.start(source)
    harness.play(harness.execute)
    # read_string drops one final newline; a Float is written as WDL makes it a String
    assert harness.outputs() == {"w.one": "a\tb\tc\n1\ttrue\t1.500000|", "w.empty": "|"}


def failure(source: str, tmp_path: Path, inputs: dict | None = None) -> str:
    harness = Harness(tmp_path)
    harness.start(source, inputs=inputs)
    harness.play(harness.execute)
    harness.work.drain()
    answer = harness.answer()
    assert answer is not None and answer[0] == "failure", answer
    return json.dumps(answer[1])


def test_write_objects_with_different_member_names_fails_clearly(tmp_path: Path) -> None:
    source = """
    version 1.1
    workflow w {
      input { Array[Object] rows }
      output { File f = write_objects(rows) }
    }
    """
    cause = failure(source, tmp_path, {"w.rows": [{"a": "1", "b": "2"}, {"a": "3", "c": "4"}]})
    assert "write_objects(): every element must have the same member names" in cause
    assert "element 2 has ['a', 'c'], element 1 has ['a', 'b']" in cause


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("object { a: [1, 2] }", "member 'a' of the argument is a Array[Int]"),
        ('object { a: "x\\ty" }', "contains a tab or newline"),
    ],
)
def test_write_object_refuses_what_a_tsv_cannot_hold(
    expression: str, message: str, tmp_path: Path
) -> None:
    source = f"version 1.1\nworkflow w {{ output {{ File f = write_object({expression}) }} }}"
    assert message in failure(source, tmp_path)


def test_a_missing_member_fails_naming_the_members_there_are(tmp_path: Path) -> None:
    source = "version 1.1\nworkflow w { input { Object o } output { String s = o.nope } }"
    cause = failure(source, tmp_path, {"w.o": {"a": "1", "b": "2"}})
    assert "Object has no member 'nope' (its members: a, b)" in cause


def test_read_object_needs_exactly_one_row(tmp_path: Path) -> None:
    source = """
    version 1.1
    workflow w { call t  output { Object o = t.o } }
    task t {
      command <<< printf 'a\\tb\\n1\\t2\\n3\\t4\\n' > rows.tsv >>>
      output { Object o = read_object("rows.tsv") }
    }
    """
    assert "read_object(): the file must have exactly two lines" in failure(source, tmp_path)


# --- array literals ----------------------------------------------------------------------------


def test_an_array_item_is_not_made_a_string_from_wdl_1_1() -> None:
    body = 'workflow w { output { File j = write_json([[1], "test"]) } }'
    message = "array items have no common type: Array[Int]+ does not coerce to String"
    assert message in type_error(body, "1.1")
    assert message in type_error(body, "1.2")
    typecheck(body, "1.0")  # miniwdl's behaviour (an Array[String]), kept for 1.0 documents


@pytest.mark.parametrize("item", ['{"a": 1}', "(1, 2)", "object { a: 1 }"])
def test_other_compound_items_were_already_refused(item: str) -> None:
    body = f'workflow w {{ output {{ File j = write_json([{item}, "test"]) }} }}'
    for version in ("1.0", "1.1"):
        assert "unify" in type_error(body, version)


def test_primitive_array_items_still_unify_to_string() -> None:
    doc = typecheck('workflow w { Array[String] a = ["x", 1, 2.5, true]  Array[Int] b = [1] }')
    assert doc.workflow is not None
    assert [str(d.expr.type) for d in doc.workflow.body] == ["Array[String]+", "Array[Int]+"]
