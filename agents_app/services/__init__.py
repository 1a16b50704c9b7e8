"""Agent writes (HackSoft styleguide services), one module per job:

- inputs: checks of what clients send (text sizes, model, playback, mcpServers entries)
- limits: the per-client caps on creations and runs in progress
- creation: an agent from an mcpServers configuration
- catalogue: an agent from catalogue servers (the chat flow), and which launch recipe to use
- package_prefetch: fetching catalogue servers' packages ahead of validation
- progress: the agent's progress list
- launch: servers' launch specs with credentials and files resolved for one start
- validation: starting every server and listing its tools; validating again
- runs: a message run in a worker with fast-agent
- schedules / schedule_outcomes: schedules and what a scheduled run's end does to them
- deletion: an agent and everything it holds

The public names are re-exported here, so `from agents_app.services import agent_create` keeps working. Workers
get work through agents_app.queueing, never by importing agents_app.tasks (the tasks import these modules)."""

from agents_app.queueing import wait_for
from agents_app.services.catalogue import (
    CatalogueServers,
    agent_create_for_catalogue_servers,
    agent_stored_credential_keys,
    catalogue_servers,
    pick_recipe,
    server_name_for,
)
from agents_app.services.creation import agent_create, agent_instruction, workflow_text
from agents_app.services.deletion import agent_delete
from agents_app.services.inputs import (
    MAX_MESSAGE_CHARS,
    MAX_PLAYBACK_STEPS,
    MAX_PROMPT_CHARS,
    MAX_SERVER_INFO_CHARS,
    MAX_WORKFLOW_CHARS,
    MODEL_RE,
    OFFLINE_MODELS,
)
from agents_app.services.launch import agent_launch, launch_specs
from agents_app.services.limits import in_progress_check
from agents_app.services.package_prefetch import catalogue_packages_prefetch, catalogue_packages_prefetch_queue
from agents_app.services.runs import (
    HISTORY_TURNS,
    agent_message_send,
    agent_run_abandon,
    agent_run_execute,
    agent_run_queue,
)
from agents_app.services.schedule_outcomes import agent_schedule_record_run
from agents_app.services.schedules import agent_schedule_delete, agent_schedule_set, agent_schedules_run_due
from agents_app.services.validation import (
    agent_revalidate,
    agent_revalidation_queue,
    agent_validate,
    agent_validation_abandon,
    agent_validation_queue,
    agent_validation_restart,
)

__all__ = [
    "HISTORY_TURNS",
    "MAX_MESSAGE_CHARS",
    "MAX_PLAYBACK_STEPS",
    "MAX_PROMPT_CHARS",
    "MAX_SERVER_INFO_CHARS",
    "MAX_WORKFLOW_CHARS",
    "MODEL_RE",
    "OFFLINE_MODELS",
    "CatalogueServers",
    "agent_create",
    "agent_create_for_catalogue_servers",
    "agent_delete",
    "agent_instruction",
    "agent_launch",
    "agent_message_send",
    "agent_revalidate",
    "agent_revalidation_queue",
    "agent_run_abandon",
    "agent_run_execute",
    "agent_run_queue",
    "agent_schedule_delete",
    "agent_schedule_record_run",
    "agent_schedule_set",
    "agent_schedules_run_due",
    "agent_stored_credential_keys",
    "agent_validate",
    "agent_validation_abandon",
    "agent_validation_queue",
    "agent_validation_restart",
    "catalogue_packages_prefetch",
    "catalogue_packages_prefetch_queue",
    "catalogue_servers",
    "in_progress_check",
    "launch_specs",
    "pick_recipe",
    "server_name_for",
    "wait_for",
    "workflow_text",
]
