"""A study spec pasted as YAML or JSON text → the JSON document, and the line of every field in the text.

The studies page sends the pasted text here, then posts the document to ``POST /api/v1/studies`` like any
client, so a spec is checked in one place only; the line map lets the page show each of that endpoint's 422
errors next to the line of the field it names. JSON is YAML, so one parser reads both. Anchors and aliases are
refused: an alias repeated inside an alias grows exponentially once written out as JSON. So are integers past 64
bits (YAML reads ``0x`` + 5 000 digits; Python cannot print it as JSON) and values YAML cannot construct.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from api.errors import ApiError
from tuner.spec.limits import unstorable_values


def _lines(node: yaml.Node, path: str, out: dict[str, int], seen: set[int]) -> None:
    if id(node) in seen:
        raise ApiError(422, f"line {node.start_mark.line + 1}: anchors and aliases (&name, *name) are not "
                            "supported in a spec; write the value out", ["body"], "invalid_spec")
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            out.setdefault(child, key.start_mark.line + 1)
            _lines(value, child, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{path}.{i}" if path else str(i)
            out.setdefault(child, item.start_mark.line + 1)
            _lines(item, child, out, seen)


def parse_spec_text(source: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The spec document of YAML/JSON ``source`` and ``{"search.n_trials": line, …}`` (1-based lines).

    Raises:
        ApiError: 422 naming the line and column of a syntax error, or saying the text is not a mapping.
    """
    try:
        root = yaml.compose(source, Loader=yaml.SafeLoader)
        lines: dict[str, int] = {}
        if root is not None:
            _lines(root, "", lines, set())
        document = yaml.safe_load(source)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ApiError(422, f"{where}not valid YAML or JSON ({e.problem or e.context}); fix the syntax there",
                       ["body"], "invalid_syntax") from None
    except yaml.YAMLError as e:
        raise ApiError(422, f"not valid YAML or JSON: {e}", ["body"], "invalid_syntax") from None
    except RecursionError:  # the parser and ``_lines`` recurse per level
        raise ApiError(422, "the spec is nested too deeply; a study spec is a few levels deep", ["body"],
                       "invalid_syntax") from None
    except ValueError as e:  # a value YAML reads but cannot construct: a decimal past 4 300 digits, 2024-13-45
        why = str(e).split("; use sys.")[0]
        raise ApiError(422, f"a value cannot be read ({why}); fix it: numbers have at most 19 digits", ["body"],
                       "invalid_syntax") from None
    if not isinstance(document, dict):
        raise ApiError(422, "the spec must be a mapping of fields (name:, workload:, aux_tasks:, …); paste the "
                            "whole study spec", ["body"], "invalid_spec")
    huge = [(loc, msg) for loc, msg in unstorable_values(document, []) if "finite" not in msg]  # NaN: see _jsonable
    if huge:
        loc, msg = huge[0]
        path = ".".join(str(p) for p in loc)
        where = f"line {lines[path]}: " if path in lines else ""
        raise ApiError(422, f"{where}{path or 'the spec'} {msg}",
                       ["body", *(p if type(p) is int else str(p) for p in loc)], "out_of_range")
    return _jsonable(document), lines


def _jsonable(value: Any) -> Any:
    """What YAML reads that JSON cannot carry (dates, NaN/inf) becomes a string: the API then names the field."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
