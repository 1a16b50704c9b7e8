from django.db import transaction

from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient, hash_api_key


@transaction.atomic
def api_client_create(*, name: str) -> tuple[ApiClient, str]:
    """Create a client and return it with its raw key (the only time the key exists outside the caller)."""
    name = name.strip()
    if not name:
        raise ApplicationError("A client name is required.", code="invalid_name")
    if ApiClient.objects.filter(name=name).exists():
        raise ApplicationError(f"An API client named {name!r} already exists.", code="duplicate_name")
    raw_key = ApiClient.generate_key()
    client = ApiClient.objects.create(name=name, key_prefix=raw_key[:12], key_hash=hash_api_key(raw_key))
    return client, raw_key
