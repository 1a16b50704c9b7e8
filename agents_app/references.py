"""Credential references: the stand-in `{"$credential": "<key>"}` that a stored MCP server entry holds wherever a
secret value goes (see agents_app.mcp_config). Its own module because both mcp_config, which builds and resolves
entries, and safety, which checks them, need to recognise one; mcp_config in turn uses safety's checks."""

from typing import Any

REFERENCE = "$credential"


def reference(key: str, template: str | None = None, *, file: bool = False) -> dict[str, Any]:
    """A stored stand-in for a credential value; `template` ("Bearer ${KEY}") wraps it (catalogue headers and
    arguments); `file` says the value is the path of the stored file KEY, materialized for the server's life."""
    ref: dict[str, Any] = {REFERENCE: key}
    if template:
        ref["template"] = template
    if file:
        ref["file"] = True
    return ref


def is_reference(value: Any) -> bool:
    return (isinstance(value, dict) and REFERENCE in value and set(value) <= {REFERENCE, "template", "file"}
            and isinstance(value[REFERENCE], str) and isinstance(value.get("template", ""), str)
            and value.get("file", False) in (True, False))


def is_file_reference(value: Any) -> bool:
    return is_reference(value) and value.get("file") is True
