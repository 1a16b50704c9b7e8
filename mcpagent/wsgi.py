import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")
# Web processes pool their database connections (settings: DB_POOL_MAX_SIZE; 0 turns the pool off; the gunicorn
# settings in mcpagent/gunicorn_conf.py make it one per thread).
os.environ.setdefault("DB_POOL_MAX_SIZE", "4")
application = get_wsgi_application()

# Every view and what it imports are loaded before this process takes a request, not by its first requests (the
# chat's request reviser brings the word-frequency tables: 1.6 s, which every thread's first chat turn waited on).
from django.urls import get_resolver  # noqa: E402  (needs the settings that get_wsgi_application set up)

get_resolver().url_patterns
