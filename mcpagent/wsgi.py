import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")
# Web processes pool their database connections (settings: DB_POOL_MAX_SIZE; 0 turns the pool off).
os.environ.setdefault("DB_POOL_MAX_SIZE", "4")
application = get_wsgi_application()
