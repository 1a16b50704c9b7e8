from django.core.management.base import BaseCommand, CommandError

from mcpagent.errors import ApplicationError
from mcpagent.services import api_client_create


class Command(BaseCommand):
    help = "Create an API client and print its key once (only a hash is stored; the key cannot be shown again)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--quiet", action="store_true", help="Print only the key (for scripts).")

    def handle(self, *args, name: str, quiet: bool, **options):
        try:
            client, raw_key = api_client_create(name=name)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if quiet:
            self.stdout.write(raw_key)
            return
        self.stdout.write(self.style.SUCCESS(f"Created API client {client.name!r} (id {client.id})."))
        self.stdout.write("Its key, shown this once only; send it as 'Authorization: Bearer <key>':")
        self.stdout.write(raw_key)
