"""What a config field's annotation says to a reader: the models in it, how its kinds
are told apart, and its type in words ("duration", "list of mapping").

Used by the reference generator (``docgen``); reads pydantic's field info only.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from tidegate.config.types import parse_duration, parse_size

Models = tuple[type[BaseModel], ...]


def models_in(annotation: Any) -> Models:
    """Every model an annotation can hold (in a list, a mapping, a union), in order."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (annotation,)
    found: dict[type[BaseModel], None] = {}
    for arg in get_args(annotation):
        found.update(dict.fromkeys(models_in(arg)))
    return tuple(found)


@dataclass(frozen=True)
class Kinds:
    """Models told apart by one key (``type: line``, ``type: binary``); an option may
    itself come in kinds (the ``gpio`` driver, by ``mode``)."""

    key: str
    options: dict[str, type[BaseModel] | Kinds]  # by the key's value, in declaration order

    def leaves(self, prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
        """Every model with its kind: its values from the top joined by ``/`` (``gpio/edge``)."""
        found: list[tuple[str, type[BaseModel]]] = []
        for value, option in self.options.items():
            kind = f"{prefix}/{value}" if prefix else value
            found += option.leaves(kind) if isinstance(option, Kinds) else [(kind, option)]
        return found

    def label(self, kind: str) -> str:
        """``type: line`` for the kind ``line``; the innermost key for ``gpio/edge``."""
        value, _, rest = kind.partition("/")
        option = self.options[value]
        if rest and isinstance(option, Kinds):
            return option.label(rest)
        return f"`{self.key}: {value}`"


def _literal(option: type[BaseModel] | Kinds, key: str) -> str | None:
    """The one value ``key`` can have in a model (or in every model of a set of kinds)."""
    if isinstance(option, Kinds):
        values = {_literal(model, key) for _, model in option.leaves()}
        return values.pop() if len(values) == 1 else None
    info = option.model_fields.get(key)
    args = get_args(info.annotation) if info is not None else ()
    if info is None or get_origin(info.annotation) is not Literal or len(args) != 1:
        return None
    return str(args[0])


def _discriminator(metadata: Iterable[Any]) -> str | None:
    for meta in metadata:
        found = getattr(meta, "discriminator", None)
        if isinstance(found, str):
            return found
    return None


def _tree(annotation: Any, declared: str | None) -> type[BaseModel] | Kinds | None:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _tree(args[0], _discriminator(annotation.__metadata__) or declared)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if origin in (list, dict) and args:
        return _tree(args[-1], declared)
    if origin not in (Union, types.UnionType):
        return None
    options = [tree for tree in (_tree(arg, None) for arg in args) if tree is not None]
    if len(options) < 2:
        return options[0] if options else None
    first = options[0] if not isinstance(options[0], Kinds) else options[0].leaves()[0][1]
    for key in [declared] if declared else list(first.model_fields):
        values = [_literal(option, key) for option in options]
        if None not in values and len(set(values)) == len(values):
            return Kinds(key, {str(v): o for v, o in zip(values, options, strict=True)})
    return Kinds("", {_name(option, n): option for n, option in enumerate(options, 1)})


def _name(option: type[BaseModel] | Kinds, number: int) -> str:
    return option.__name__ if isinstance(option, type) else f"form {number}"


def kinds_of(info: FieldInfo) -> Kinds | None:
    """How the models a field can hold are told apart: by the declared discriminator,
    else by the first key that is a one-value ``Literal`` of its own in each. None
    when the field holds one model (or none)."""
    tree = _tree(info.annotation, _discriminator([info]))
    return tree if isinstance(tree, Kinds) else None


def _validated_by(info: FieldInfo, func: Any) -> bool:
    """Is the field (or, for ``X | None``, its X) validated by ``func`` first?"""
    metadata = list(info.metadata)
    for arg in get_args(info.annotation):
        metadata.extend(getattr(arg, "__metadata__", ()))
    return any(isinstance(m, BeforeValidator) and m.func is func for m in metadata)


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        names = dict.fromkeys(_type_name(a) for a in args if a is not type(None))
        return " or ".join(names)
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if origin is Annotated:
        return _type_name(args[0])
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {
            "str": "text",
            "TextTemplate": "text",
            "int": "integer",
            "float": "number",
            "bool": "true/false",
            "Path": "path",
        }.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def field_type(info: FieldInfo) -> str:
    """The field's type in words, as the reference's type column shows it."""
    optional = " or none" if type(None) in get_args(info.annotation) else ""
    if _validated_by(info, parse_duration):
        return "duration" + optional
    if _validated_by(info, parse_size):
        return "size" + optional
    return _type_name(info.annotation)


def key_path(info: FieldInfo, name: str) -> str:
    """The key as written in the file, with ``[]`` when it holds a list."""
    key = info.alias or name
    lists = [a for a in (info.annotation, *get_args(info.annotation)) if get_origin(a) is list]
    return f"{key}[]" if lists else key


def common_keys(models: list[type[BaseModel]]) -> set[str]:
    """Keys every model has with the same type, default and meaning."""

    def row(info: FieldInfo) -> tuple[str, Any, Any, str | None]:
        return field_type(info), info.default, info.default_factory, info.description

    first = models[0].model_fields
    return {
        name
        for name, info in first.items()
        if all(name in m.model_fields and row(m.model_fields[name]) == row(info) for m in models)
    }
