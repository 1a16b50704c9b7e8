# syntax=docker/dockerfile:1
# mcpagent: one image for web, worker and beat (docker-compose.yml). Python 3.12, as the project requires.

# --- build: the virtualenv, with compilers only here ---
FROM python:3.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- runtime ---
FROM python:3.12-slim-bookworm
# node/npm: `npx` launches the catalogue's npm MCP servers; git: some servers need it. uvx comes with the venv (uv).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged user: MCP servers run as child processes of the worker, never as root.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app \
 && mkdir -p /data && chown app:app /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app . /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MCPAGENT_DATA_DIR=/data \
    npm_config_cache=/home/app/.npm
USER app
EXPOSE 8000
# /api/health is 200 only when the database (and broker, if any) answer; exempt from the https redirect.
# ALLOWED_HOSTS must keep 127.0.0.1 for this probe (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=8).status != 200)"]
CMD ["sh", "-c", "exec gunicorn mcpagent.wsgi -c python:mcpagent.gunicorn_conf --bind 0.0.0.0:8000"]
