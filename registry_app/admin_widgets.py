"""Form widgets and fields that make the catalogue's JSON columns readable on the admin's change page.

- JSON (tool input schemas, recipe args/env/headers, choices) is shown pretty-printed in a monospace box, and an
  empty value as an empty box, not the text "null"; an emptied box saves the column's empty value.
- Credential instructions (a list of steps) are edited as text, one step a line.
- A tool's input schema is also summarised as its parameters (name, type, required, description).
"""

from __future__ import annotations

import json

from django import forms
from django.utils.html import format_html, format_html_join


class PrettyJSONWidget(forms.Textarea):
    def __init__(self, attrs=None):
        super().__init__({"class": "catalogue-json", "rows": 4, **(attrs or {})})

    def format_value(self, value):
        if value in (None, "", "null"):
            return ""
        try:
            return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
        except (TypeError, ValueError):
            return value  # invalid JSON posted back: show it as typed, with the form's error


class StepsField(forms.Field):
    """A JSON list of strings, edited one item a line (blank lines dropped)."""

    widget = forms.Textarea

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "class": "catalogue-steps"}))
        kwargs.setdefault("help_text", "One step a line.")
        super().__init__(**kwargs)

    @staticmethod
    def _steps(value) -> list[str]:
        if value in (None, ""):
            return []
        if isinstance(value, (list, tuple)):
            return [str(item).strip() for item in value if str(item).strip()]
        return [line.strip() for line in str(value).splitlines() if line.strip()]

    def prepare_value(self, value):
        return "\n".join(self._steps(value))

    def to_python(self, value):
        return self._steps(value)

    def has_changed(self, initial, data):
        return self._steps(initial) != self._steps(data)


def schema_parameters(schema) -> str:
    """HTML: a tool's parameters from its JSON schema, one a line ("query (string, required): what to find")."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or not properties:
        return format_html('<span class="quiet">{}</span>', "no parameters" if isinstance(schema, dict) else "no schema")
    required = set(schema.get("required") or []) if isinstance(schema.get("required"), list) else set()
    rows = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type") or ("enum" if "enum" in spec else "any")
        kind = "/".join(map(str, kind)) if isinstance(kind, list) else str(kind)
        flags = f"{kind}, required" if name in required else kind
        description = str(spec.get("description") or "")
        rows.append((name, flags, (": " + description[:160]) if description else ""))
    return format_html_join("", '<div class="catalogue-param"><code>{}</code> <em>({})</em>{}</div>', rows)
