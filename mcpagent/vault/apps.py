from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "mcpagent.vault"
    label = "vault"
    verbose_name = "Credentials vault"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import worker_ready

        from mcpagent.vault.materialize import materialized_files_sweep

        # A worker killed at its hard time limit leaves the decrypted files of the run it was doing: remove them
        # when a worker (re)starts, not only at the next purge.
        worker_ready.connect(lambda **_kwargs: materialized_files_sweep(), weak=False,
                             dispatch_uid="vault_sweep_leftover_files")
