"""Database helpers shared by the apps."""

from django.db.migrations.operations.base import Operation


class PgvectorMissing(RuntimeError):
    pass


class CreatePgvectorExtension(Operation):
    """CREATE EXTENSION vector, failing with one clear message (and the fix) when the server lacks pgvector."""

    reversible = True

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            if cursor.fetchone() is None:
                raise PgvectorMissing(
                    "The PostgreSQL server at DATABASE_URL has no pgvector extension. Install pgvector on it "
                    "(e.g. `apt install postgresql-<version>-pgvector`, or enable the `vector` extension in the "
                    "Supabase dashboard), or unset DATABASE_URL to use the embedded database."
                )
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return "Creates the pgvector extension"
