"""python manage.py search_servers "TEXT" [--limit N] [--category C] [--json]"""

import json

from django.core.management.base import BaseCommand, CommandError

from mcpagent.errors import ApplicationError
from registry_app.selectors import MAX_LIMIT, server_search


class Command(BaseCommand):
    help = "Search the catalogue as the API does (same ranking); best first."

    def add_arguments(self, parser):
        parser.add_argument("query")
        parser.add_argument("--limit", type=int, default=10)
        parser.add_argument("--category", default=None)
        parser.add_argument("--json", action="store_true", help="Print a JSON list of {slug, name, repository_url, score}.")
        parser.add_argument("--explain", action="store_true", help="Show the ranking components of each result.")

    def handle(self, *args, **options):
        query, limit, category = options["query"], options["limit"], options["category"]
        if not 1 <= limit <= MAX_LIMIT:
            raise CommandError(f"--limit must be between 1 and {MAX_LIMIT}")
        try:
            hits = server_search(query=query, limit=limit, category=category)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            rows = [
                {"slug": h.server.slug, "name": h.server.name, "repository_url": h.server.repository_url, "score": h.score}
                for h in hits
            ]
            self.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        for i, hit in enumerate(hits, start=1):
            line = f"{i:2}. {hit.score:.4f}  {hit.server.slug}  {hit.server.name}  {hit.server.repository_url}"
            if options["explain"]:
                line += (
                    f"\n      dense #{hit.dense_rank} lexical #{hit.lexical_rank} name {hit.name_match:.2f}"
                    f" prior {hit.prior:.2f} relevance {hit.components.get('relevance')}"
                )
            self.stdout.write(line)
        if not hits:
            self.stdout.write("no servers found")

