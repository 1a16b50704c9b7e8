"""Serializer fields shared by the APIs."""

from django.core.validators import RegexValidator
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A CharField that takes only strings: DRF's own turns 123 or true into "123" / "True", so a client that
    sent the wrong type would get an answer to a message it never wrote."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


END_USER_MAX_LENGTH = 200
END_USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:+|/=-]*$"


def end_user_field() -> StrictCharField:
    """The client's own id for the person it acts for (optional): credentials and files collected for them are
    kept apart from every other end user's and reused only for them."""
    return StrictCharField(
        max_length=END_USER_MAX_LENGTH, required=False, allow_blank=True, default="",
        validators=[RegexValidator(END_USER_PATTERN, "Letters, digits and . _ @ : + | / = - only, starting with a "
                                                     "letter or digit.")],
        help_text="Your id for the end user this is for (at most 200 characters: letters, digits, . _ @ : + | / = -). "
                  "Their connected accounts are kept apart from every other end user's.",
    )
