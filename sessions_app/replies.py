"""The master agent's words to the user, composed from the plan (the same for both analyzers)."""

from agents_app.master.plan import Plan
from sessions_app.models import Session


def plan_reply(*, session: Session, plan: Plan, plan_changed: bool, announce: bool) -> str:
    lines: list[str] = []
    revision = session.context.get("revision") if plan_changed else ""
    if revision:
        lines.append(revision)
    if plan_changed and plan.servers:
        names = [f"{s.name} ({s.slug})" for s in plan.servers]
        lines.append("I'll use " + _join(names) + ".")
        lines.append("Workflow:")
        for step in plan.workflow:
            where = f" [{step.server}{' → ' + step.tool if step.tool else ''}]" if step.server else ""
            lines.append(f"  {step.step}. {step.action}{where}")
        for note in plan.notes:
            lines.append(f"Note: {note}")
        if plan.schedule and session.context.get("schedule_choice") is not False:
            lines.append(f"It will run by itself {plan.schedule['description']} once it is ready (you asked: "
                         f"\"{plan.schedule['phrase']}\"). Send `schedule: false` to drop that, or a `schedule` "
                         "object {cron | interval_seconds, timezone} to change it.")
    if plan.questions:
        # One question at a time: its answer re-plans, and the next one (if any) comes then.
        lines.append("One question before I build it: " + plan.questions[0].text)
    elif announce:
        lines.append("Thanks, I stored what you sent (encrypted).")
    missing = [f"{r['credential_key']} for {r['mcp_server']}" for r in session.required_credentials]
    files = [f"{f['key']} ({f['file_type']} file) for {f['mcp_server']}" for f in session.required_files]
    authorizations = session.context.get("authorizations") or []
    for needed in authorizations:
        again = " again" if needed.get("reason") == "needs_reauth" else ""
        lines.append(f"Connect your {needed['provider'].title()} account{again} (for {_join(needed['mcp_servers'])}): "
                     "open the authorization_url in `authorizations` and approve; no token needs to be pasted. "
                     "Then send me a message to go on.")
    if missing or files:
        lines.append("To set this up I still need: " + _join(missing + files) + ". Instructions for each are in "
                     "required_credentials / required_files; send them in `credentials` / `files`.")
    elif session.status == Session.Status.CREATING_AGENT:
        lines.append("I have everything I need and am creating your agent now.")
    return "\n".join(lines)


def unverified_reply(unverified: list[dict]) -> str:
    """Say which values were stored without the provider's check, and why."""
    lines = [f"{item['credential_key']} for {item['mcp_server']}: {item['reason'] or 'its provider did not answer'}"
             for item in unverified]
    return ("I stored these but could not check them with their provider, so they are marked unverified (they are "
            "tried when the agent's servers start; send them again to re-check):\n"
            + "\n".join(f"- {line}" for line in lines))


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def agent_failure_text(error: dict) -> str:
    """What went wrong in a failed agent creation: each failed server with its own cause and what to do."""
    failures = [f for f in error.get("servers") or [error] if isinstance(f, dict)] or [{}]

    def cause_and_fix(failure: dict) -> str:
        return " ".join(part for part in (failure.get("message") or "validation failed", failure.get("hint")) if part)

    if len(failures) == 1:
        return cause_and_fix(failures[0])
    return f"{len(failures)} servers failed:\n" + "\n".join(
        f"- {failure.get('server') or 'a server'}: {cause_and_fix(failure)}" for failure in failures)
