"""gunicorn settings of the web process, read by the Procfile, the Dockerfile, docker-compose, `manage.py serve` and
bench_load (`gunicorn mcpagent.wsgi -c python:mcpagent.gunicorn_conf`); command-line options still override them.

Threads (gthread), not one request per process: a chat turn or an agent message may wait a few seconds for the
worker, and a process that can only wait serves nobody else meanwhile. Keep-alive is long because clients and
proxies reuse idle connections: gunicorn's default of 2 s closes them under the client's feet, which a client sees
as a dropped connection (httpx's ReadError) on the request it just sent.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
# Above the longest wait a request makes (AGENT_RUN_WAIT_SECONDS, 30 s).
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
# Above the idle timeout of the usual load balancers (60 s), so the proxy, not gunicorn, closes an idle connection.
keepalive = int(os.environ.get("WEB_KEEPALIVE", "75"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "30"))
# One pooled database connection per thread: with fewer, threads queue for the pool (DB_POOL_TIMEOUT, then a 503).
os.environ.setdefault("DB_POOL_MAX_SIZE", str(threads))
