"""What the vault needs to know about a server's settings, supplied by the caller.

The vault imports only core, so catalogue knowledge (a server's declared requirements, curated formats, curated
file recipes) comes in as a CredentialRules object; registry_app.credential_rules.CATALOGUE_RULES is the
catalogue's. The base class knows nothing: every key is accepted with the built-in format checks only.
"""


class CredentialRules:
    def requirements(self, server: str) -> dict[str, dict]:
        """{key: requirement} declared for `server` (dicts with kind, format, pattern, choices, required...)."""
        return {}

    def curated(self, key: str, requirement: dict) -> dict:
        """Curated facts about `key` (a `pattern`, a `service_name`), or {}."""
        return {}

    def file_problems(self, server: str, key: str, data: bytes) -> list[str]:
        """Why `data` does not fit the file `server` expects for `key` ([] when it fits or nothing is known)."""
        return []


NO_RULES = CredentialRules()
