"""python manage.py embed_servers [--all|--stale] [--batch N] [--no-cache] [--export-cache]"""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from registry_app.embeddings import get_provider
from registry_app.models import McpServer
from registry_app.search_index import (
    cache_export,
    refresh_search_fields,
    server_embeddings_refresh,
    stale_server_ids,
    tool_cache_export,
)


class Command(BaseCommand):
    help = (
        "Compute server and tool embeddings for the configured provider (EMBEDDING_PROVIDER): the stale ones "
        "(default; no vector for this model, or the server's or tool's text changed) or all. Vectors in the shipped "
        "cache (config/embeddings/<model>.npz and <model>.tools.npz) are reused. Also creates the model's HNSW "
        "indexes."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="Re-index the text of every server and re-embed all.")
        which.add_argument(
            "--stale", action="store_true", help="Only servers and tools without a current embedding (default)."
        )
        parser.add_argument("--batch", type=int, default=64, help="Servers per batch (default 64).")
        parser.add_argument("--no-cache", action="store_true", help="Compute every vector; ignore the shipped cache.")
        parser.add_argument(
            "--export-cache", action="store_true", help="Afterwards, write the current vectors to the cache files."
        )

    def handle(self, *args, **options):
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        provider = get_provider()
        if options["all"]:
            refresh_search_fields()
        total = McpServer.objects.count() if options["all"] else len(stale_server_ids(model=provider.name))
        quiet = options["verbosity"] == 0
        bar_options = {"disable": True if quiet else None, "file": self.stderr._out}
        tool_bar: list[tqdm] = []

        def tool_progress(done: int, tools: int) -> None:
            if not tool_bar:  # the number of stale tools is known once the servers are done
                tool_bar.append(tqdm(total=tools, unit="tool", desc=f"tools ({provider.name})", **bar_options))
            tool_bar[0].update(done)

        try:
            with tqdm(total=total, unit="server", desc=f"embedding ({provider.name})", **bar_options) as bar:
                result = server_embeddings_refresh(
                    provider=provider,
                    only_stale=not options["all"],
                    batch_size=options["batch"],
                    use_cache=not options["no_cache"],
                    progress=bar.update,
                    tool_progress=tool_progress,
                )
        finally:
            for bar in tool_bar:
                bar.close()
        if not quiet:
            self.stdout.write(
                f"{provider.name}: {result.considered} servers embedded ({result.from_cache} from the cache, "
                f"{result.computed} computed); index {result.index}"
            )
            self.stdout.write(
                f"{provider.name}: {result.tools_considered} tools embedded ({result.tools_from_cache} from the cache, "
                f"{result.tools_computed} computed); index {result.tool_index}"
            )
        if options["export_cache"]:
            path, count = cache_export(model=provider.name)
            self.stdout.write(f"wrote {count} vectors to {path}")
            path, count = tool_cache_export(model=provider.name)
            self.stdout.write(f"wrote {count} tool vectors to {path}")
