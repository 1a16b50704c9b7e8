"""Admin of the top layer: Django discovers this module, and the staff pages that read every app (the dashboard
link on the admin index, the catalogue's usage columns) register from sessions_app.ops.admin."""

from sessions_app.ops import admin as ops_admin  # noqa: F401
