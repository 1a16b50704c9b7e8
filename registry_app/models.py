"""The MCP server catalogue: servers, their tools, credential requirements, launch recipes, provenance,
embeddings and the staff curation log."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import VectorField


class McpServer(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        DEPRECATED = "deprecated"
        HIDDEN = "hidden"

    slug = models.SlugField(max_length=200, unique=True)
    name = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    repository_url = models.CharField(
        max_length=500, blank=True, db_index=True, help_text="Normalised (https://host/owner/repo, lower case)."
    )
    homepage = models.URLField(max_length=500, blank=True)
    categories = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    license = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    verified = models.BooleanField(default=False, help_text="Checked by staff.")
    featured = models.BooleanField(default=False)
    official = models.BooleanField(default=False, help_text="Published by the vendor of the service it wraps.")
    popularity = models.FloatField(default=0.0, help_text="Quality/popularity signal from the sources, 0..1.")
    egress_hosts = models.JSONField(
        default=list, blank=True,
        help_text='Hosts this server may reach from its sandbox (["api.slack.com", "*.slack.com"]); empty: any '
                  "public host.",
    )
    # Fields staff edited by hand: imports never overwrite these.
    curated_fields = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    # Text that search indexes (name + description + tools + categories) and its hash, to find stale embeddings.
    search_document = models.TextField(blank=True)
    search_vector = SearchVectorField(null=True, editable=False)
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "MCP server"
        ordering = ["name"]
        indexes = [
            GinIndex(fields=["search_vector"], name="registry_server_fts"),
            GinIndex(fields=["categories"], name="registry_server_categories"),
        ]

    def __str__(self) -> str:
        return self.name


class ServerSource(models.Model):
    """One source's contribution to a server (provenance): which catalogue, its id there, where in the file."""

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="sources")
    source = models.CharField(max_length=40, db_index=True, help_text="official, toolsdk, docker, awesome, native, registry-api")
    source_id = models.CharField(max_length=400)
    location = models.CharField(max_length=500, blank=True, help_text="File and line/record it came from.")
    data_hash = models.CharField(max_length=64, blank=True, help_text="Hash of the normalised record, for idempotency.")
    data = models.JSONField(default=dict, blank=True)
    # Identity keys of the record (repo URL, package ids, remote URL, registry name): how later imports from
    # other sources find this server to merge into (see registry_app.importers.merge).
    merge_keys = ArrayField(models.CharField(max_length=600), default=list, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "source_id"], name="registry_source_unique")]

    def __str__(self) -> str:
        return f"{self.source}:{self.source_id}"


class LaunchRecipe(models.Model):
    """How to start the server: a package (npm / pypi / oci / ...) or a remote URL."""

    class Kind(models.TextChoices):
        NPM = "npm"
        PYPI = "pypi"
        OCI = "oci"
        REMOTE = "remote"
        OTHER = "other"

    class Transport(models.TextChoices):
        STDIO = "stdio"
        STREAMABLE_HTTP = "streamable-http"
        SSE = "sse"

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="launch_recipes")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    identifier = models.CharField(max_length=400, blank=True, help_text="Package name or image.")
    version = models.CharField(max_length=100, blank=True)
    transport = models.CharField(max_length=20, choices=Transport.choices, default=Transport.STDIO)
    url = models.CharField(max_length=1000, blank=True, help_text="Remote servers only.")
    command = models.CharField(max_length=100, blank=True, help_text="Launcher, e.g. npx, uvx, docker.")
    args = models.JSONField(default=list, blank=True)
    # Templates: "${KEY}" stands for the value of the server's credential requirement KEY.
    env = models.JSONField(default=dict, blank=True, help_text='Env vars to set, e.g. {"X": "Bearer ${TOKEN}"}.')
    headers = models.JSONField(default=dict, blank=True, help_text='Remote only: HTTP headers, same templates.')
    proxy_env = models.JSONField(
        default=list, blank=True,
        help_text='Env vars the server takes its HTTP proxy from besides HTTPS_PROXY and the like, which its HTTP '
                  'client ignores (["SLACK_MCP_PROXY"]): its sandbox sets them to the egress proxy.',
    )
    source = models.CharField(max_length=40, blank=True)
    priority = models.IntegerField(default=100, help_text="Lower is preferred.")

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.kind}:{self.identifier or self.url}"


class ServerTool(models.Model):
    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    input_schema = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["server", "name"], name="registry_tool_unique")]

    def __str__(self) -> str:
        return self.name


class CredentialRequirement(models.Model):
    """A credential or setting a server needs (env var, HTTP header, file or argument)."""

    class Kind(models.TextChoices):
        API_KEY = "api_key"
        TOKEN = "token"
        OAUTH_CLIENT = "oauth_client"
        PASSWORD = "password"
        FILE_PATH = "file_path"
        URL = "url"
        SETTING = "setting"

    class Location(models.TextChoices):
        ENV = "env"
        HEADER = "header"
        FILE = "file"
        ARG = "arg"

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="credentials")
    key = models.CharField(max_length=200, help_text="Env var or header name.")
    location = models.CharField(max_length=10, choices=Location.choices, default=Location.ENV)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.SETTING)
    description = models.TextField(blank=True)
    instructions = models.JSONField(default=list, blank=True, help_text="Steps to obtain the value.")
    service = models.CharField(max_length=100, blank=True, help_text="Key into config/credinfo.json.")
    required = models.BooleanField(default=False)
    secret = models.BooleanField(default=False)
    pattern = models.CharField(max_length=300, blank=True, help_text="Regular expression the value must match.")
    format = models.CharField(max_length=50, blank=True, help_text="string, url, email, number, boolean, filepath...")
    default = models.CharField(max_length=500, blank=True)
    choices = models.JSONField(default=list, blank=True)
    example = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-required", "key"]
        constraints = [models.UniqueConstraint(fields=["server", "key"], name="registry_credential_unique")]

    def __str__(self) -> str:
        return self.key


class SyncState(models.Model):
    """Checkpoint of an incremental sync from a registry API (one row per registry URL).

    `cursor` is set while a pass is in progress and saved after every committed page, so an interrupted
    `sync_registry` resumes at the next page; `watermark` is the newest `updatedAt` of the last completed pass,
    used as `updated_since` for the next one."""

    url = models.CharField(max_length=500, unique=True)
    cursor = models.CharField(max_length=1000, blank=True)
    pass_since = models.CharField(max_length=64, blank=True, help_text="updated_since of the pass in progress.")
    pass_max_updated = models.CharField(max_length=64, blank=True, help_text="Newest updatedAt seen this pass.")
    watermark = models.CharField(max_length=64, blank=True, help_text="Newest updatedAt of the last full pass.")
    pages = models.PositiveIntegerField(default=0, help_text="Pages committed in the pass in progress.")
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_completed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.url


class _Embedding(models.Model):
    """One vector of one embedding model. The vector has no fixed dimension in the schema, so a new provider
    needs no migration; each model gets its own partial HNSW index on `embedding::vector(dims)`. `content_hash`
    is the hash of the embedded text: a row whose text changed since is stale."""

    model = models.CharField(max_length=100)
    dims = models.PositiveIntegerField()
    embedding = VectorField()
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ServerEmbedding(_Embedding):
    """One embedding per server per embedding model, of its search document."""

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="embeddings")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["server", "model"], name="registry_embedding_unique")]


class ToolEmbedding(_Embedding):
    """One embedding per tool per embedding model, of the tool's own text (search_index.build_tool_document).
    A server's single embedding reads only its first 256 tokens, so most tools of a large server are invisible to
    it; search also compares the request with each tool (selectors.server_search)."""

    tool = models.ForeignKey(ServerTool, on_delete=models.CASCADE, related_name="embeddings")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tool", "model"], name="registry_tool_embedding_unique")]


class CurationEdit(models.Model):
    """Who changed what on a server, and when. Written by the admin; survives imports."""

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="curation_edits")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=50, default="edit")
    changes = models.JSONField(default=dict, help_text="{field: [old, new]}")
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]


class SuppressedRow(models.Model):
    """A tombstone: an imported tool, credential requirement or launch recipe that staff deleted from a server.

    Imports never re-create a suppressed row (services._diff_children), so a staff deletion survives every later
    import of the same source. `key` is the row's identity as the importer computes it (services.natural_key):
    the tool name, the credential key, or a launch recipe's [kind, identifier, url, transport]. Restoring (the
    admin; curation.suppressions_restore) deletes the tombstone and brings the row back from the server's stored
    source records. The row itself is deleted, so nothing that reads tools / credentials / recipes (the API,
    search, agent creation) has to know about suppression."""

    class Relation(models.TextChoices):
        TOOLS = "tools", "tool"
        CREDENTIALS = "credentials", "credential requirement"
        LAUNCH_RECIPES = "launch_recipes", "launch recipe"

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="suppressed_rows")
    relation = models.CharField(max_length=20, choices=Relation.choices)
    key = models.TextField(help_text="The row's identity as imports compute it.")
    label = models.CharField(max_length=500, help_text="How the curation log names the row.")
    row = models.JSONField(default=dict, blank=True, help_text="The deleted row's values.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "suppressed imported row"
        ordering = ["server", "relation", "label"]
        constraints = [
            models.UniqueConstraint(fields=["server", "relation", "key"], name="registry_suppressed_row_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_relation_display()} {self.label}"
