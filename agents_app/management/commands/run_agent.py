"""`python manage.py run_agent AGENT_ID "MESSAGE" [--model passthrough] [--verbose]`: run one message through an
agent in this process (operators: try an agent, debug a server) and print the reply."""

import json
import uuid

from django.core.management.base import BaseCommand, CommandError

from agents_app.models import Agent
from agents_app.selectors import agent_turns
from agents_app.services.runs import agent_message_send, agent_run_execute
from mcpagent.errors import ApplicationError


class Command(BaseCommand):
    help = "Run one message through an agent with fast-agent and print the reply."

    def add_arguments(self, parser) -> None:
        parser.add_argument("agent_id")
        parser.add_argument("message")
        parser.add_argument("--model",
                            help="Use this model instead of the agent's (e.g. passthrough, playback, sonnet).")
        parser.add_argument("--verbose", action="store_true", help="Also print each tool call and its result.")

    def handle(self, *args, agent_id: str, message: str, model: str | None, verbose: bool, **options) -> None:
        agent = Agent.objects.filter(pk=agent_id).first() if _is_uuid(agent_id) else None
        if agent is None:
            raise CommandError(f"No agent {agent_id}.")
        try:
            run = agent_message_send(agent=agent, message=message, model=model, actor="run_agent command")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        run = agent_run_execute(run_id=run.id)
        if run is None:
            raise CommandError(f"Agent {agent_id} was deleted while the message ran.")
        if verbose:
            for turn in agent_turns(agent=agent, run=run).filter(role="tool"):
                meta = turn.metadata
                if meta.get("kind") == "tool_call":
                    self.stdout.write(f"-> {meta.get('tool')} {json.dumps(meta.get('arguments'), ensure_ascii=False)}")
                else:
                    self.stdout.write(f"<- {turn.message}")
        if run.status != run.Status.SUCCEEDED:
            error = run.error or {}
            raise CommandError(f"{error.get('message', 'The run failed.')} {error.get('hint', '')}".strip())
        self.stdout.write(run.reply)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
