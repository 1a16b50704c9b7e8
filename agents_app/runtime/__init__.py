"""Starting MCP servers: validation with the plain `mcp` SDK, and agent runs with fast-agent.

- launch: a stdio server's start in its sandbox, process tags, killing what a task left behind.
- validation: start, initialize, list tools, stop; failures classified.
- fast_agent_session: a fast-agent agent attached to the servers, and one message through it (`converse`).
- run: run_agent, warm (servers kept by the pool) or cold (started and stopped for the run).
- pool: the warm servers of this process.
"""

from agents_app.runtime.fast_agent_session import RunOutcome, converse
from agents_app.runtime.launch import (_RUN_LOCK, PROCESS_TAG_ENV, ServerFailure, kill_tagged, limit_failure,
                                       new_process_tag, process_tag_prefix, run_sync, sandbox_launch,
                                       tagged_processes, task_redactor)
from agents_app.runtime.pool import WarmKey, warm_pool, warm_servers_drop, warm_servers_shutdown
from agents_app.runtime.run import run_agent
from agents_app.runtime.validation import ServerCheck, check_server, validate_servers, validate_servers_async

__all__ = [
    "PROCESS_TAG_ENV", "_RUN_LOCK", "RunOutcome", "ServerCheck", "ServerFailure", "WarmKey", "check_server",
    "converse", "kill_tagged", "limit_failure", "new_process_tag", "process_tag_prefix", "run_agent", "run_sync",
    "sandbox_launch", "tagged_processes", "task_redactor", "validate_servers", "validate_servers_async",
    "warm_pool", "warm_servers_drop", "warm_servers_shutdown",
]
