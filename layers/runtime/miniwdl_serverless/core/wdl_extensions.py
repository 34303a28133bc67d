"""WDL features the specification has and stock miniwdl lacks, added to miniwdl in one place.

The ``Object`` type (WDL 1.0-1.2, deprecated since 1.1): an open set of named values whose
names and types are known only at run time. miniwdl parses ``Object`` as the name of an
undefined struct and refuses it; here a declared ``Object`` is :class:`OpenObject`, a kind of
miniwdl's own ``Type.Object`` (the type of ``object { ... }`` literals), so that

* ``Object o = object { a: 1 }``, an ``Object`` input given as a JSON object, a call output
  or ``read_object`` result all typecheck and evaluate;
* ``o.a`` reads a member (typed ``Any`` statically, checked when evaluated: a missing member
  is an evaluation error naming the members there are); member access on an object literal
  works too;
* coercions follow the specification's table: ``Map[String, Y]`` and any struct to
  ``Object``; ``Object`` to ``Map[String, Y]`` and to a struct (checked at run time);
* ``write_object(Struct|Object)`` writes a two-line TSV file (member names, then values),
  ``write_objects(Array[Struct|Object])`` the names and one line per element (every element
  must have the same member names), each line ending with a newline; only primitive members
  (an unset optional member writes an empty field), no tab or newline inside a name or value;
* ``read_object(File)`` / ``read_objects(File)`` return ``Object`` / ``Array[Object]`` with
  ``String`` members (miniwdl returned ``Map[String, String]``; an ``Object`` still coerces to
  one, so documents declaring the result as a map keep working).

Array literals (WDL 1.1 and later): a compound value (Array, Map, Pair, struct, Object) never
coerces to ``String``, so ``[[1], "a"]`` has no common item type and is a type error, where
miniwdl made it an ``Array[String]`` (WDL 1.0 documents keep miniwdl's behaviour).

``install`` changes miniwdl's classes for the whole process, idempotently: its parser (the
``type`` rule), ``Type.Map``/``Type.StructInstance`` checks, ``Value.from_json`` and the
``Map``/``Struct`` value coercions, member access (``Expr.Get``), array literal typing
(``Expr.Array``) and the standard library (every ``StdLib.Base`` gets the four functions, so
typechecking, the workflow's and each task's standard library all have them). Each change
applies only where an ``Object`` (or, for arrays, a compound item made a String) is involved;
everything else goes to miniwdl's own code unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

import lark
import WDL._parser
from WDL import Env, Error, Expr, StdLib, Type, Value
from WDL._util import WDLVersion, wdl_version_geq


class OpenObject(Type.Object):
    """A declared ``Object``: members unknown until run time."""

    def __init__(self, optional: bool = False) -> None:
        super().__init__({})
        self._optional = optional

    def __str__(self) -> str:
        return "Object" + ("?" if self.optional else "")

    # Always no known member: miniwdl's unify() adds members into an Object type it unifies
    # (an array of an Object and object literals); an open Object stays open.
    @property  # type: ignore[override]
    def members(self) -> dict[str, Type.Base]:
        return {}

    @members.setter
    def members(self, _members: dict[str, Type.Base]) -> None:
        pass

    def check(self, rhs: Type.Base, check_quant: bool = True) -> None:
        if isinstance(rhs, (Type.Any, Type.Object, Type.StructInstance)):
            # to a struct: the members are checked when the value is coerced
            return self._check_optional(rhs, check_quant)
        if isinstance(rhs, Type.Map):
            Type.String().check(rhs.item_type[0])
            return self._check_optional(rhs, check_quant)
        raise TypeError()


def object_value(members: dict[str, Value.Base], expr: Expr.Base | None = None) -> Value.Struct:
    """An ``Object`` value with these members (each member's type is its value's)."""
    return Value.Struct(Type.Object({k: v.type for k, v in members.items()}), members, expr=expr)


# miniwdl's own functions, kept by install() for every case not involving an Object
_miniwdl: dict[str, Any] = {}


# --- parsing: a type named Object is the open Object type ---------------------------------


def _type_rule(self: Any, meta: Any, items: Any) -> Type.Base:
    ans = _miniwdl["type_rule"](self, meta, items)
    if isinstance(ans, Type.StructInstance) and ans.type_name == "Object":
        obj = OpenObject(ans.optional)
        obj.pos = ans.pos
        return obj
    return ans  # type: ignore[no-any-return]


def _struct_rule(self: Any, meta: Any, items: Any) -> Any:
    if items and items[0] == "Object":
        raise Error.InvalidType(
            self._sp(meta), "a struct cannot be named Object (the name of a WDL type)"
        )
    return _miniwdl["struct_rule"](self, meta, items)


# --- static coercions to Object -------------------------------------------------------------


def _map_check(self: Type.Map, rhs: Type.Base, check_quant: bool = True) -> None:
    if isinstance(rhs, OpenObject):
        key = self.item_type[0]
        if type(key) is not Type.String or key.optional:  # Map[String, Y] only, as the spec says
            raise TypeError()
        return self._check_optional(rhs, check_quant)
    return _miniwdl["map_check"](self, rhs, check_quant)  # type: ignore[no-any-return]


def _struct_check(self: Type.StructInstance, rhs: Type.Base, check_quant: bool = True) -> None:
    if isinstance(rhs, OpenObject):
        return self._check_optional(rhs, check_quant)
    return _miniwdl["struct_check"](self, rhs, check_quant)  # type: ignore[no-any-return]


# --- values: JSON inputs and run-time coercions ---------------------------------------------


def _from_json(type: Type.Base, value: Any) -> Value.Base:
    if not isinstance(type, OpenObject):
        return _miniwdl["from_json"](type, value)  # type: ignore[no-any-return]
    if isinstance(value, dict):
        return Value._infer_from_json(value)  # an Object, each member typed by its JSON
    if value is None and type.optional:
        return Value.Null()
    raise Error.InputError(f"couldn't construct '{type}' from {Value._abbreviate_json(value)}")


def _map_coerce(self: Value.Map, desired_type: Type.Base | None = None) -> Value.Base:
    if not isinstance(desired_type, OpenObject):
        return _miniwdl["map_coerce"](self, desired_type)  # type: ignore[no-any-return]
    members: dict[str, Value.Base] = {}
    for key, value in self.value:
        name = key.coerce(Type.String()).value
        if name in members:
            _value_error(self, f"cannot coerce map to Object: duplicate key '{name}'")
        members[name] = value
    return object_value(members, self.expr)


def _struct_coerce(self: Value.Struct, desired_type: Type.Base | None = None) -> Value.Base:
    if isinstance(desired_type, OpenObject) and isinstance(self.type, Type.StructInstance):
        return object_value(dict(self.value), self.expr)
    return _miniwdl["struct_coerce"](self, desired_type)  # type: ignore[no-any-return]


def _value_error(value: Value.Base, message: str) -> None:
    if value.expr is not None:
        raise Error.EvalError(value.expr, message)
    raise Error.RuntimeError(message)


# --- member access: obj.member ----------------------------------------------------------------


def _get_infer_type(self: Expr.Get, type_env: Env.Bindings[Type.Base]) -> Type.Base:
    try:
        return _miniwdl["get_infer_type"](self, type_env)  # type: ignore[no-any-return]
    except Error.NoSuchMember:
        ety = getattr(self.expr, "_type", None)
        if not isinstance(ety, Type.Object) or not self.member:
            raise
        if self._check_quant and ety.optional:
            raise Error.StaticTypeMismatch(self.expr, ety.copy(optional=False), ety) from None
        if self.member in ety.members:
            return ety.members[self.member]
        if isinstance(ety, OpenObject):
            return Type.Any()
        raise


def _get_eval(self: Expr.Get, env: Env.Bindings[Value.Base], stdlib: StdLib.Base) -> Value.Base:
    if not (self.member and isinstance(getattr(self.expr, "_type", None), Type.Object)):
        return _miniwdl["get_eval"](self, env, stdlib)  # type: ignore[no-any-return]
    value = self.expr.eval(env, stdlib)
    if isinstance(value, Value.Null):
        raise Error.NullValue(self.expr)
    if not isinstance(value, Value.Struct):
        raise Error.EvalError(self, f"cannot access member '{self.member}' of {value.type}")
    if self.member not in value.value:
        there = ", ".join(sorted(value.value)) or "none"
        raise Error.EvalError(self, f"Object has no member '{self.member}' (its members: {there})")
    return value.value[self.member]


# --- array literals: no compound item made a String (WDL 1.1+) ---------------------------------

_COMPOUND = (Type.Array, Type.Map, Type.Pair, Type.StructInstance, Type.Object)


def _array_infer_type(self: Expr.Array, type_env: Env.Bindings[Type.Base]) -> Type.Base:
    ans = _miniwdl["array_infer_type"](self, type_env)
    version = getattr(self._stdlib, "wdl_version", "1.0")
    if (
        isinstance(ans, Type.Array)
        and isinstance(ans.item_type, Type.String)
        and wdl_version_geq(version, WDLVersion.V1_1)
    ):
        compound = next((i.type for i in self.items if isinstance(i.type, _COMPOUND)), None)
        if compound is not None:
            raise Error.IndeterminateType(
                self,
                f"array items have no common type: {compound} does not coerce to String "
                f"(WDL {version})",
            )
    return ans  # type: ignore[no-any-return]


# --- standard library: write_object(s), read_object(s) -----------------------------------


def _is_object_like(ty: Type.Base) -> bool:
    return isinstance(ty, (Type.Object, Type.StructInstance, Type.Any))


class _WriteObjects(StdLib.EagerFunction):
    """``write_object(Struct|Object)`` (``many=False``) or ``write_objects(Array[...])``."""

    def __init__(self, stdlib: StdLib.Base, many: bool) -> None:
        self.stdlib = stdlib
        self.many = many
        self.name = "write_objects" if many else "write_object"

    def infer_type(self, expr: Expr.Apply) -> Type.Base:
        if len(expr.arguments) != 1:
            raise Error.WrongArity(expr, 1)
        arg = expr.arguments[0]
        ty = arg.type
        wanted: Type.Base = OpenObject()
        if self.many:
            wanted = Type.Array(wanted)
            ok = isinstance(ty, Type.Array) and _is_object_like(ty.item_type)
            inner = ty.item_type if isinstance(ty, Type.Array) else ty
        else:
            ok = _is_object_like(ty)
            inner = ty
        if not ok or (expr._check_quant and (ty.optional or inner.optional)):
            raise Error.StaticTypeMismatch(
                arg, wanted, ty, f"for {self.name} argument #1 (a struct or Object)"
            )
        return Type.File()

    def _call_eager(self, expr: Expr.Apply, arguments: list[Value.Base]) -> Value.Base:
        rows = arguments[0].value if self.many else [arguments[0]]
        table = [_members(expr, self.name, row, i) for i, row in enumerate(rows)]
        text = _tsv(expr, self.name, table)

        def serialize(_value: Value.Base, outfile: IO[bytes]) -> None:
            outfile.write(text.encode("utf-8"))

        write: Callable[[Value.Base], Value.File] = self.stdlib._write(serialize)
        return write(arguments[0])


def _members(expr: Expr.Apply, name: str, value: Value.Base, index: int) -> dict[str, str]:
    where = f"element {index + 1}" if name == "write_objects" else "the argument"
    if isinstance(value, Value.Map):
        value = value.coerce(OpenObject())
    if not isinstance(value, Value.Struct):
        raise Error.EvalError(expr, f"{name}(): {where} is not a struct or Object")
    fields = {}
    for key, member in value.value.items():
        if isinstance(member, Value.Null):
            fields[key] = ""
        elif isinstance(member, (Value.String, Value.File, Value.Int, Value.Float, Value.Boolean)):
            fields[key] = member.coerce(Type.String()).value
        else:
            raise Error.EvalError(
                expr,
                f"{name}(): member '{key}' of {where} is a {member.type}; "
                "only primitive values (String, File, Int, Float, Boolean) can be written",
            )
    return fields


def _tsv(expr: Expr.Apply, name: str, table: list[dict[str, str]]) -> str:
    if not table:
        return ""
    names = list(table[0])
    for index, row in enumerate(table[1:], start=2):
        if set(row) != set(names):
            raise Error.EvalError(
                expr,
                f"{name}(): every element must have the same member names; element {index} has "
                f"{sorted(row)}, element 1 has {sorted(names)}",
            )
    lines = [names] + [[row[key] for key in names] for row in table]
    for line in lines:
        for field in line:
            if "\t" in field or "\n" in field:
                raise Error.EvalError(
                    expr, f"{name}(): a member name or value contains a tab or newline: {field!r}"
                )
    return "".join("\t".join(line) + "\n" for line in lines)


def _parse_objects(text: str, name: str) -> list[Value.Base]:
    if not text.strip():
        return []
    lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    rows = [line.split("\t") for line in lines]
    names = rows[0]
    if any(not key for key in names) or len(set(names)) != len(names):
        raise Error.InputError(f"{name}(): the header line has an empty or repeated member name")
    objects: list[Value.Base] = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(names):
            raise Error.InputError(
                f"{name}(): line {number} has {len(row)} fields, the header has {len(names)}"
            )
        objects.append(object_value({k: Value.String(v) for k, v in zip(names, row, strict=True)}))
    return objects


def _read_object(text: str) -> Value.Base:
    objects = _parse_objects(text, "read_object")
    if len(objects) != 1:
        raise Error.InputError(
            f"read_object(): the file must have exactly two lines (member names, then values); "
            f"it has {len(objects) + 1 if text.strip() else 0}"
        )
    return objects[0]


def _read_objects(text: str) -> Value.Base:
    return Value.Array(Type.Object({}), _parse_objects(text, "read_objects"))


def _add_functions(stdlib: StdLib.Base) -> None:
    stdlib.write_object = _WriteObjects(stdlib, many=False)  # type: ignore[attr-defined]
    stdlib.write_objects = _WriteObjects(stdlib, many=True)  # type: ignore[attr-defined]
    stdlib.read_object = StdLib.StaticFunction(  # type: ignore[attr-defined]
        "read_object", [Type.File()], OpenObject(), stdlib._read(_read_object)
    )
    stdlib.read_objects = StdLib.StaticFunction(  # type: ignore[attr-defined]
        "read_objects", [Type.File()], Type.Array(OpenObject()), stdlib._read(_read_objects)
    )


def _stdlib_init(self: StdLib.Base, *args: Any, **kwargs: Any) -> None:
    _miniwdl["stdlib_init"](self, *args, **kwargs)
    _add_functions(self)


def install() -> None:
    """Add the features above to miniwdl (idempotent; the whole process)."""
    if _miniwdl:
        return
    transformer = WDL._parser._DocTransformer
    _miniwdl.update(
        type_rule=transformer.__dict__["type"].base_func,
        struct_rule=transformer.__dict__["struct"].base_func,
        map_check=Type.Map.check,
        struct_check=Type.StructInstance.check,
        from_json=Value.from_json,
        map_coerce=Value.Map.coerce,
        struct_coerce=Value.Struct.coerce,
        get_infer_type=Expr.Get._infer_type,
        get_eval=Expr.Get._eval,
        array_infer_type=Expr.Array._infer_type,
        stdlib_init=StdLib.Base.__init__,
    )
    transformer.type = lark.v_args(meta=True)(_type_rule)  # type: ignore[method-assign]
    transformer.struct = lark.v_args(meta=True)(_struct_rule)  # type: ignore[method-assign]
    Type.Map.check = _map_check  # type: ignore[method-assign]
    Type.StructInstance.check = _struct_check  # type: ignore[method-assign]
    Value.from_json = _from_json
    Value.Map.coerce = _map_coerce  # type: ignore[method-assign]
    Value.Struct.coerce = _struct_coerce  # type: ignore[method-assign]
    Expr.Get._infer_type = _get_infer_type  # type: ignore[method-assign]
    Expr.Get._eval = _get_eval  # type: ignore[method-assign]
    Expr.Array._infer_type = _array_infer_type  # type: ignore[method-assign]
    StdLib.Base.__init__ = _stdlib_init  # type: ignore[method-assign]
