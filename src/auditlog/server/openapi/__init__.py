"""The OpenAPI 3.1 document of every route.

A route's documentation is an ``Operation`` given to its ``Route`` (``doc=``) beside the
handler; the pieces operations share live here, one module each: ``schemas`` (component
schemas), ``responses`` (problem answers and headers), ``parameters`` (the §3 filters and
paging), and ``document`` puts them together. This package never imports the handlers.
"""

from auditlog.server.openapi.document import (
    ConflictingSchema,
    UndocumentedRoute,
    openapi_document,
    openapi_value,
)
from auditlog.server.openapi.operation import JSON, Operation, json_content, ref, schema_ref

__all__ = [
    "JSON",
    "ConflictingSchema",
    "Operation",
    "UndocumentedRoute",
    "json_content",
    "openapi_document",
    "openapi_value",
    "ref",
    "schema_ref",
]
