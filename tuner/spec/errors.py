"""The one error a spec that cannot be run raises, and pydantic's errors put in a user's words.

Every check of a spec (its structure, the workload fit, the budgets, its references) answers with ``SpecError``:
``(field, message)`` pairs a user can act on, the same on the CLI, over the API and in a failed study's reason.
"""

from __future__ import annotations

from pydantic import ValidationError


class SpecError(ValueError):
    """A spec that cannot be run; ``errors`` lists ``(field, message)`` pairs a user can act on."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        """One ``field: message`` line per problem."""
        return [f"{loc}: {msg}" if loc else msg for loc, msg in self.errors]


def format_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    """Turn pydantic's error list into ``(field.path, message)`` pairs in user words."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif err["type"] == "literal_error":
            ctx = err.get("ctx", {})
            msg = f"got {err.get('input')!r}; allowed: {ctx.get('expected', '')}"
        out.append((loc, msg))
    return out
