import json

from django.core.management.base import BaseCommand, CommandError

from agents_app.master.service import analysis_result, analyze_request


class Command(BaseCommand):
    help = "Run the master agent on a request: chosen servers, required credentials, workflow (same code as /api/chat)."

    def add_arguments(self, parser):
        parser.add_argument("request")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")

    def handle(self, *args, request: str, as_json: bool, **options):
        if not request.strip():
            raise CommandError("The request is empty: describe the workflow in plain words.")
        result = analysis_result(analyze_request(request=request))
        if as_json:
            self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
            return
        self.stdout.write(self.style.MIGRATE_HEADING("Servers"))
        for s in result["servers"]:
            self.stdout.write(f"  {s['name']} ({s['slug']})  confidence {s['confidence']:.2f}  {s['reason']}")
        self.stdout.write(self.style.MIGRATE_HEADING("Workflow"))
        for step in result["workflow"]:
            where = f"  [{step['server']}{' → ' + step['tool'] if step['tool'] else ''}]" if step["server"] else ""
            self.stdout.write(f"  {step['step']}. {step['action']}{where}")
        self.stdout.write(self.style.MIGRATE_HEADING("Required credentials"))
        for c in result["required_credentials"]:
            self.stdout.write(f"  {c['mcp_server']}: {c['credential_key']} — {c['description']}")
        for note in result["notes"]:
            self.stdout.write(self.style.WARNING(f"Note: {note}"))

