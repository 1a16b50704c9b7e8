"""Serializer fields shared by the APIs."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A CharField that takes only strings: DRF's own turns 123 or true into "123" / "True", so a client that
    sent the wrong type would get an answer to a message it never wrote."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)
