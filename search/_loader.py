"""Reading a study file: YAML text to a validated `StudySpec`, or a `SpecError` with every problem.

The loader composes the YAML node tree with a safe loader and turns it into plain data, noting
the line of every key. It then expands `${VAR}` references, drops keys left empty and validates
with the pydantic models. Each validation error becomes a line ``FILE:LINE: key.path: message``.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hpo.errors import SpecError
from hpo.search._spec import PROBLEM, PROBLEMS, KeyPath, StudySpec, show

# PyYAML follows YAML 1.1, where a float needs a dot, so `1e-4` would be the string "1e-4".
# YAML 1.2 and Python read it as a number, and so does this loader.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"

# An alias expands to a copy of its anchor, so nested aliases can grow a small file into a huge
# tree ("billion laughs"). No study file comes near this many values.
_MAX_VALUES = 100_000

_VARIABLE = re.compile(r"\$(?:\$|\{([^}]*)\}|\{)")
_VARIABLE_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)

# Under these keys null is a value: a fixed argument None, or a condition on a null choice.
_NULL_KEEPING: tuple[tuple[str | None, ...], ...] = (
    ("objective", "args"),
    ("space", None, "when"),
)


class _StudyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with `1e-4` read as a float and dates kept as text."""


_StudyLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StudyLoader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+0123456789."))


@dataclass
class _Document:
    """Plain data from a YAML file, with the line of each key path and the problems found."""

    data: object = None
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[tuple[int, KeyPath, str]] = field(default_factory=list)
    values: int = 0

    def line(self, path: KeyPath) -> int:
        """Return the line of `path`, or of its nearest ancestor in the file, or 1."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def add(self, path: KeyPath, message: str, line: int | None = None) -> None:
        self.problems.append((self.line(path) if line is None else line, path, message))


def load_spec(path: Path | str) -> StudySpec:
    """Read and validate a study file, raising SpecError with the file and line of each problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise SpecError(name, [f"{name}: file not found"]) from error
    except IsADirectoryError as error:
        raise SpecError(
            name, [f"{name}: is a directory, but a study file was expected"]
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(name, [f"{name}: cannot be read: {error}"]) from error
    return parse_spec(text, name)


def parse_spec(text: str, path: str = "study.yaml") -> StudySpec:
    """Validate the text of a study file, naming it `path` in messages."""
    document = _compose(text)
    if not isinstance(document.data, dict):
        if not document.problems:
            _check_top_level(document)
        raise SpecError(path, _format(path, document.problems))

    data = _expand(document.data, (), document)
    data = _drop_nulls(data, ())
    spec = None
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as error:
        for details in error.errors(include_url=False):
            _translate(details, document)

    if spec is None or document.problems:
        raise SpecError(path, _format(path, document.problems))
    return spec


def _format(path: str, found: list[tuple[int, KeyPath, str]]) -> list[str]:
    lines = []
    for line, key_path, message in sorted(found, key=lambda problem: problem[0]):
        where = dotted(key_path)
        lines.append(
            f"{path}:{line}: {where}: {message}" if where else f"{path}:{line}: {message}"
        )
    return lines


def dotted(path: KeyPath) -> str:
    """Write a key path as it is read in the file: `space.lr.low`, `study.directions[1]`."""
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text += f".{segment}" if text else segment
    return text


# YAML to plain data


def _compose(text: str) -> _Document:
    document = _Document()
    loader = _StudyLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            document.data = _to_data(node, (), document, loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        document.add((), f"invalid YAML: {error.problem or error.context}", line)
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        document.add((), f"invalid YAML: cannot read character {error.character!r}", line)
    except yaml.YAMLError as error:
        document.add((), f"invalid YAML: {error}", 1)
    finally:
        loader.dispose()
    return document


def _to_data(node: yaml.Node, path: KeyPath, document: _Document, loader: _StudyLoader) -> object:
    document.values += 1
    if document.values > _MAX_VALUES:
        raise yaml.MarkedYAMLError(
            problem=f"more than {_MAX_VALUES} values after expanding aliases",
            problem_mark=node.start_mark,
        )

    if node.tag not in (_MAP_TAG, _SEQ_TAG) and not isinstance(node, yaml.ScalarNode):
        # The safe loader's own wording for an unknown tag on a scalar.
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"could not determine a constructor for the tag {node.tag!r}",
            node.start_mark,
        )
    if isinstance(node, yaml.MappingNode):
        return _mapping_to_data(node, path, document, loader)
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            document.lines[(*path, index)] = item.start_mark.line + 1
            items.append(_to_data(item, (*path, index), document, loader))
        return items
    return loader.construct_object(node)


def _mapping_to_data(
    node: yaml.MappingNode, path: KeyPath, document: _Document, loader: _StudyLoader
) -> dict[str, object]:
    result: dict[str, object] = {}
    merged: list[yaml.Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            merged.append(value_node)
            continue
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            document.add(path, "keys must be plain names, but got a list or mapping", line)
            continue

        # The key's source text is its name, so `2024:` and `on:` stay names.
        key = key_node.value
        if key in result:
            first = document.lines[(*path, key)]
            document.add((*path, key), f"duplicate key; the first is on line {first}", line)
            continue
        document.lines[(*path, key)] = line
        result[key] = _to_data(value_node, (*path, key), document, loader)

    # A merge key (`<<: *defaults`) adds the keys of other mappings that this one lacks.
    for value_node in merged:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                document.add(path, "<< must merge a mapping or a list of mappings")
                continue
            for key, value in _mapping_to_data(source, path, document, loader).items():
                result.setdefault(key, value)
    return result


def _check_top_level(document: _Document) -> None:
    if document.data is None:
        document.add((), "the file is empty, but a study needs study, objective and budget")
    elif not isinstance(document.data, dict):
        document.add(
            (), f"must be a mapping of sections such as study:, but got {show(document.data)}"
        )


# Cleaning before validation


def _expand(value: object, path: KeyPath, document: _Document) -> object:
    """Replace ${NAME} and ${NAME:-default} in every string value, and $$ with a literal $."""
    if isinstance(value, dict):
        return {key: _expand(item, (*path, key), document) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, (*path, index), document) for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        body = match.group(1)
        reference = _VARIABLE_BODY.fullmatch(body) if body is not None else None
        if reference is None:
            document.add(
                path,
                f"must reference a variable as ${{NAME}} or ${{NAME:-default}}, "
                f"but got {match.group(0)!r}; write $$ for a literal $",
            )
            return match.group(0)

        name, default = reference.groups()
        current = os.environ.get(name)
        if default is not None and not current:
            return str(default)
        if current is None:
            if path == ("study", "storage"):
                # --storage may replace it, so the command line decides whether it is missing.
                return match.group(0)
            document.add(
                path,
                f"environment variable {name} is not set; set it, "
                f"or give a default as ${{{name}:-default}}",
            )
            return match.group(0)
        return current

    return _VARIABLE.sub(substitute, value)


def _drop_nulls(value: object, path: KeyPath) -> object:
    """Treat `key:` with nothing after it as if the key were absent."""
    if isinstance(value, list):
        return [_drop_nulls(item, (*path, index)) for index, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if any(_matches(path, pattern) for pattern in _NULL_KEEPING):
        return value
    return {
        key: _drop_nulls(item, (*path, key)) for key, item in value.items() if item is not None
    }


def _matches(path: KeyPath, pattern: tuple[str | None, ...]) -> bool:
    if len(path) != len(pattern):
        return False
    return all(want is None or want == have for have, want in zip(path, pattern, strict=True))


# Validation errors to problem lines


@dataclass
class _Location:
    """Key path in the file that a pydantic error points to, with the types found on the way."""

    path: KeyPath = ()
    annotation: object = None
    parent: type[BaseModel] | None = None
    members: dict[str, type[BaseModel]] | None = None


def _locate(loc: Sequence[str | int]) -> _Location:
    """Map pydantic's `loc` onto the key path in the file, dropping the tags of tagged unions."""
    location = _Location(annotation=StudySpec)
    for segment in loc:
        annotation = _unwrap(location.annotation)
        members = _tagged_members(annotation)
        if members is not None:
            location.members = members
            if segment in members:
                location.annotation = members[segment]
                continue
            # A key of the union's members, as in a cross-check's own key path.
            annotation = next(
                (model for model in members.values() if segment in model.model_fields),
                next(iter(members.values())),
            )

        location.path = (*location.path, segment)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            location.parent = annotation
            model_field = annotation.model_fields.get(str(segment))
            location.annotation = model_field.annotation if model_field is not None else None
        elif get_origin(annotation) in (dict, Mapping):
            location.annotation = get_args(annotation)[1]
        elif get_origin(annotation) in (list, tuple, Sequence):
            location.annotation = get_args(annotation)[0]
        else:
            location.annotation = None
    location.annotation = _unwrap(location.annotation)
    return location


def _unwrap(annotation: object) -> object:
    """Strip Annotated and `| None` from an annotation."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _tagged_members(annotation: object) -> dict[str, type[BaseModel]] | None:
    """Map each tag of a union of models, discriminated by their `type` field, to its model."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return None
    members: dict[str, type[BaseModel]] = {}
    for member in get_args(annotation):
        model = _unwrap(member)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        tag_field = model.model_fields.get("type")
        if tag_field is None:
            return None
        for tag in get_args(_unwrap(tag_field.annotation)):
            members[str(tag)] = model
    return members


def _suggestion(word: object, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _translate(details: ErrorDetails, document: _Document) -> None:
    error_type = details["type"]
    context = details.get("ctx", {})
    location = _locate(details["loc"])
    value = details.get("input")

    if error_type == PROBLEMS:
        for relative, message in context["problems"]:
            located = _locate((*details["loc"], *relative))
            document.add(located.path, message)
        return
    if error_type == PROBLEM:
        document.add(location.path, context["message"])
        return

    if error_type in ("union_tag_invalid", "union_tag_not_found"):
        tags = list(_tagged_members(location.annotation) or {})
        path = (*location.path, "type")
        allowed = ", ".join(tags)
        if error_type == "union_tag_not_found":
            document.add(path, f"missing required key; must be one of {allowed}")
        else:
            tag = context.get("tag")
            document.add(
                path, f"must be one of {allowed}, but got {tag!r}{_suggestion(tag, tags)}"
            )
        return

    if error_type == "extra_forbidden":
        document.add(location.path, _unknown_key(location))
        return

    document.add(location.path, _message(error_type, context, value, location.annotation))


def _unknown_key(location: _Location) -> str:
    key = location.path[-1]
    allowed = list(location.parent.model_fields) if location.parent is not None else []
    suggestion = _suggestion(key, allowed)
    if suggestion:
        return f"unknown key{suggestion}"

    # An option of another sampler or pruner type.
    owners = [
        tag
        for tag, model in (location.members or {}).items()
        if model is not location.parent and str(key) in model.model_fields
    ]
    if owners and location.parent is not None:
        tag = location.parent.model_fields["type"].default
        return f"unknown key for type {tag}; {key} is an option of {', '.join(owners)}"
    return f"unknown key; allowed keys are {', '.join(allowed)}"


_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "finite_number": "a finite number",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _message(
    error_type: str, context: Mapping[str, object], value: object, annotation: object
) -> str:
    if error_type == "missing":
        return "missing required key"
    if error_type in _TYPE_NAMES:
        # YAML 1.1 reads yes, no, on and off as booleans.
        quote = error_type == "string_type" and isinstance(value, bool)
        hint = "; quote it to keep it as text" if quote else ""
        return f"must be {_TYPE_NAMES[error_type]}, but got {show(value)}{hint}"
    if error_type in _BOUNDS:
        bound = next(iter(context.values()))
        # Field(gt=0) on a float field reports its bound as 0.0.
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"must be {_BOUNDS[error_type]} {bound}, but got {show(value)}"
    if error_type == "literal_error":
        choices = [str(arg) for arg in get_args(annotation)] if _is_literal(annotation) else []
        allowed = ", ".join(choices) if choices else str(context.get("expected"))
        return f"must be one of {allowed}, but got {show(value)}{_suggestion(value, choices)}"
    if error_type in ("string_too_short", "too_short"):
        return f"must not be empty, but got {show(value)}"
    # NOTE: a pydantic error type not listed above keeps pydantic's own sentence.
    return f"is invalid: {details_message(error_type, context)}, but got {show(value)}"


def _is_literal(annotation: object) -> bool:
    return get_origin(annotation) is Literal


def details_message(error_type: str, context: Mapping[str, object]) -> str:
    """Describe an unexpected pydantic error by its type and context."""
    if not context:
        return error_type
    return error_type + " (" + ", ".join(f"{key}={value}" for key, value in context.items()) + ")"
