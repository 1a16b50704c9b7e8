from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "mcpagent.vault"
    label = "vault"
    verbose_name = "Credentials vault"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import worker_ready

        from mcpagent.vault.materialize import materialized_files_sweep

        self._register_encrypted_tables()

        # A worker killed at its hard time limit leaves the decrypted files of the run it was doing: remove them
        # when a worker (re)starts, not only at the next purge.
        worker_ready.connect(lambda **_kwargs: materialized_files_sweep(), weak=False,
                             dispatch_uid="vault_sweep_leftover_files")

    @staticmethod
    def _register_encrypted_tables() -> None:
        from mcpagent.crypto import decrypt_bytes, fingerprint
        from mcpagent.encrypted_tables import encrypted_table_register
        from mcpagent.vault.models import (Credential, McpAuthConnection, OAuthApp, OAuthConnection, OAuthState,
                                           StoredFile)

        encrypted_table_register("credentials", Credential, ("value",))
        # A file's fingerprint is keyed by the newest key as well.
        encrypted_table_register("files", StoredFile, ("content",),
                                 also_update=lambda new: {"fingerprint": fingerprint(decrypt_bytes(new["content"]))})
        encrypted_table_register("oauth_apps", OAuthApp, ("client_secret",))
        encrypted_table_register("oauth_connections", OAuthConnection, ("token",))
        encrypted_table_register("oauth_states", OAuthState, ("code_verifier",))
        encrypted_table_register("mcp_auth_connections", McpAuthConnection, ("registration", "token"))
