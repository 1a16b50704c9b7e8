"""The catalogue's knowledge of a server's settings, handed to the vault (which imports only core).

CATALOGUE_RULES: a server's declared requirements (registry_app CredentialRequirement), curated formats and
file recipes (registry_app.credinfo). Curated data is advisory: a bad entry never blocks storing a value.
"""

import logging

from django.db.models import Q

from mcpagent.vault.rules import CredentialRules
from registry_app.credinfo import file_problems, match_credential, service_files
from registry_app.models import CredentialRequirement, McpServer

logger = logging.getLogger(__name__)


class CatalogueRules(CredentialRules):
    def requirements(self, server: str) -> dict[str, dict]:
        """{key: requirement} for a catalogue server slug ({} if the server is not in the catalogue)."""
        rows = CredentialRequirement.objects.filter(server__slug=server).select_related("server")
        return {
            row.key: {
                "key": row.key, "kind": row.kind, "format": row.format, "pattern": row.pattern,
                "choices": row.choices, "required": row.required, "secret": row.secret, "server": server,
                "server_name": row.server.name, "repository_url": row.server.repository_url,
            }
            for row in rows
        }

    def curated(self, key: str, requirement: dict) -> dict:
        try:
            curated = match_credential(
                key=key, server_name=requirement.get("server_name", ""),
                repository_url=requirement.get("repository_url", ""), slug=requirement.get("server", ""),
            )
        except Exception:  # curated data is advisory; a bad entry must not block storing a credential
            logger.warning("curated credential data failed for a key of %s", requirement.get("server", ""))
            return {}
        return curated or {}

    def file_problems(self, server: str, key: str, data: bytes) -> list[str]:
        """Checks from the curated file recipe for the file a catalogue server's key expects."""
        catalogue = McpServer.objects.filter(slug=server).first()
        if catalogue is None:
            return []
        specs = service_files(server_name=catalogue.name, repository_url=catalogue.repository_url, slug=server)
        spec = next((s for s in specs if key in s.get("keys", [])), None)
        return file_problems(spec, data) if spec else []


CATALOGUE_RULES = CatalogueRules()


def catalogue_requirements(server: str) -> dict[str, dict]:
    """{key: requirement} for a catalogue server slug ({} if the server is not in the catalogue)."""
    return CATALOGUE_RULES.requirements(server)


def file_requirement_keys(server_slug: str) -> list[str]:
    """The keys of a catalogue server that name a file (uploaded, then handed to the server as a path)."""
    requirements = CredentialRequirement.objects.filter(server__slug=server_slug).filter(
        Q(location=CredentialRequirement.Location.FILE) | Q(kind=CredentialRequirement.Kind.FILE_PATH))
    return sorted(requirements.values_list("key", flat=True))


def active_server_exists(slug: str) -> bool:
    return McpServer.objects.filter(slug=slug, status=McpServer.Status.ACTIVE).exists()
