import hashlib
import secrets
import uuid

from django.db import models

KEY_PREFIX = "mcpa_"


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (as with GitHub tokens): lookups stay O(1),
    # and a leaked table still cannot be used to authenticate.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiClient(models.Model):
    """A REST API consumer. Its key is shown once at creation; only its SHA-256 is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    key_prefix = models.CharField(max_length=16, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # db_default too: rows inserted by code that predates the column (an older release during a rolling deploy)
    # get [] rather than failing.
    oauth_return_hosts = models.JSONField(
        default=list, db_default=[], blank=True,
        help_text='Hosts an OAuth authorization may send the user back to (return_url), e.g. ["app.example.com"].')

    class Meta:
        verbose_name = "API client"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # DRF's IsAuthenticated checks request.user.is_authenticated; the client is the principal.
    is_authenticated = True
    is_anonymous = False

    @staticmethod
    def generate_key() -> str:
        return KEY_PREFIX + secrets.token_urlsafe(32)
