"""What the HTTP API answers, declared: each JSON answer is a msgspec Struct, so the OpenAPI
schema (`/schema`) documents its fields. The services answer plain dicts; a route turns its dict
into its Struct with `msgspec.convert`, which refuses a key the Struct does not declare (and a
value of another type): a field added to a service and not to its answer fails the route's tests
with a 500, rather than reaching clients undocumented or being dropped without a word."""

from __future__ import annotations

import msgspec


class Answer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The base of the answers built from a service's dict (`msgspec.convert(row, Type)`)."""
