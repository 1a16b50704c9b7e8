"""The one place agents_app touches credential values: a thin adapter over the vault (mcpagent.vault).

Agents store secrets only as references ({"$credential": "<key>"}, see agents_app.mcp_config); the values
live in the vault (encrypted, audited, expiring), one entry per client, end user, server and key, which the
agent (and the session it was built from) refers to. `scope` is the catalogue slug for catalogue servers, and
"custom/<name>" for servers a client configured itself (a slug never contains "/", so a client's server named
like a catalogue server is not checked against that server's catalogue requirements); the vault keeps the
latter per agent (vault_server).

A catalogue server with an OAuth rule (agents_app.oauth_rules) takes the keys the rule names from the end user's
OAuth connection instead, refreshed before use when expired; they win over values stored for the same keys.
A remote server that uses MCP authorization gets the end user's token from the vault as its Authorization header.
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from agents_app import mcp_config
from agents_app.credential_rules import CATALOGUE_RULES
from agents_app.mcp_config import LaunchSpec
from agents_app.oauth_rules import oauth_connected_keys, oauth_rule, oauth_values_for_use
from mcpagent.errors import ApplicationError, NotFound
from mcpagent.redaction import Redactor
from mcpagent.vault import store
from mcpagent.vault.files import file_ids_for_use, file_keys_held
from mcpagent.vault.materialize import file_materialize, generated_files_materialize
from mcpagent.vault.mcp_auth_flow import mcp_token_for_use


def credential_scope(server_name: str, entry: dict) -> str:
    return entry.get("catalogue") or f"custom/{server_name}"


def vault_server(agent: Any, scope: str) -> str:
    """The vault's server name for a scope. A catalogue slug as is: the end user's connection to that service,
    which all their sessions and agents share. A client's own server ("custom/<name>") per agent
    ("custom/<agent id>/<name>"): two agents may each define a server of that name with different settings."""
    return f"custom/{agent.pk}/{scope.removeprefix('custom/')}" if scope.startswith("custom/") else scope


def secrets_store(*, agent: Any, server_name: str, scope: str, values: dict[str, str], actor: Any, reason: str) -> None:
    """Store `values` ({key: value}) for one server of `agent`. Invalid values raise a 400 naming each key
    (never the value); call inside the agent's creation transaction so nothing is stored on failure."""
    if not values:
        return
    result = store.credentials_store(
        client=agent.client, session=agent.session, agent=agent, server=vault_server(agent, scope), values=values,
        actor=actor, reason=reason, rules=CATALOGUE_RULES,
    )
    if result.errors:
        raise ApplicationError(
            f"Some values for MCP server '{server_name}' were rejected; nothing was stored. Fix the named ones.",
            code="invalid_credentials", details={"server": server_name, "errors": result.errors},
        )


def secrets_for_use(*, agent: Any, scope: str, actor: Any, reason: str) -> dict[str, str]:
    """{key: value} for one server of `agent`, to start it now (audited as read_for_use). Never log it. An OAuth
    connection the server needs but the end user no longer has (or must authorize again) is a 409."""
    values = store.credential_values_for_use(
        client=agent.client, session=agent.session, agent=agent, server=vault_server(agent, scope), actor=actor,
        reason=reason,
    )
    rule = oauth_rule(scope)
    if rule is not None:
        try:
            from_oauth, _ = oauth_values_for_use(client=agent.client, end_user=agent.end_user, server=scope,
                                                 actor=actor, reason=reason)
        except ApplicationError as exc:
            # Values pasted before staff registered the OAuth app still work on their own.
            if exc.code == "oauth_reauth_needed" and set(rule.value_keys) <= set(values):
                return values
            raise
        values.update(from_oauth)
    return values


def secrets_redactor(*, agent: Any) -> Redactor:
    """A Redactor of every value the vault holds for `agent` (and the session it was built from): what a user
    pasted into a message is masked before the message is stored or shown."""
    return Redactor(store.credential_values_to_mask(client=agent.client, session=agent.session, agent=agent))


@contextmanager
def secrets_files_for_use(*, agent: Any, server_name: str, scope: str, keys: list[str], actor: Any,
                          reason: str) -> Iterator[dict[str, str]]:
    """{key: path} of the stored files `keys` of one server of `agent`, written decrypted into a private folder
    (0700, files 0600) for the duration of the block and removed when it ends, also on error (audited as
    read_for_use). Keys without a live file are left out: the launch then says which one is missing."""
    rule = oauth_rule(scope)
    generated: dict[str, tuple[str, bytes]] = {}
    if rule is not None and set(rule.file_keys) & set(keys):
        _, contents = oauth_values_for_use(client=agent.client, end_user=agent.end_user, server=scope, actor=actor,
                                           reason=reason)
        generated = {key: (f"{key.lower()}.json", content) for key, content in contents.items() if key in keys}
    ids = file_ids_for_use(client=agent.client, session=agent.session, agent=agent, server=vault_server(agent, scope),
                           keys=[key for key in keys if key not in generated])
    if not ids and not generated:
        yield {}
        return
    with ExitStack() as stack:
        made = {key: str(path) for key, path in stack.enter_context(generated_files_materialize(generated)).items()}
        if not ids:
            yield made
            return
        try:
            paths = stack.enter_context(file_materialize(
                client=agent.client, session=agent.session, agent=agent, file_ids=list(ids.values()), actor=actor,
                reason=reason,
            ))
        except NotFound:  # deleted between the look-up and the read
            raise ApplicationError(
                f"MCP server '{server_name}' needs a file that was deleted while the server was being started.",
                code="credential_missing", status=409,
                details={"server": server_name, "hint": "Upload it again and retry."},
            ) from None
        yield {**{key: str(paths[key]) for key in ids if key in paths}, **made}


def secrets_adopt(*, agent: Any, actor: Any, replace: bool = False) -> None:
    """Let the agent refer to the credentials and files its session refers to (they then live at least as long
    as the agent). No copy is made: a value sent to the session later (a retry with a fixed token) already
    replaced the entry the agent refers to; `replace` only names the audit reason."""
    if agent.session is not None:
        store.credentials_extend_ttl(client=agent.client, session=agent.session, agent=agent, actor=actor,
                                     reason="agent_revalidate" if replace else "agent_create", replace=replace)


def secrets_record_validation(*, agent: Any, scope: str, accepted: bool, details: dict, actor: Any) -> None:
    """Audit whether the server accepted its credentials at validation (details: codes and counts, no values)."""
    store.credentials_record_validation(client=agent.client, session=agent.session, agent=agent,
                                        server=vault_server(agent, scope), accepted=accepted, actor=actor,
                                        reason="agent_validate", details=details)


def secrets_state(*, agent: Any) -> dict[str, list[dict]]:
    """What the vault holds for the agent's servers, by name only: `missing`, the values and files they refer to
    that the vault no longer has for it (its connection was deleted, or the value expired; starting such a
    server fails with credential_missing naming the same server and key), and `unverified`, values stored while
    their provider could not be reached to check them. Items: {server, credential, kind, connection}."""
    values = store.credential_states(client=agent.client, session=agent.session, agent=agent)
    files = file_keys_held(client=agent.client, session=agent.session, agent=agent)
    state: dict[str, list[dict]] = {"missing": [], "unverified": []}
    for server_name, entry in agent.mcp_config.get("mcpServers", {}).items():
        catalogue_scope = credential_scope(server_name, entry)
        scope = vault_server(agent, catalogue_scope)
        held = values.get(scope, {})
        # Keys the end user's OAuth connection supplies at each start are held too.
        oauth_values, oauth_files = oauth_connected_keys(client=agent.client, end_user=agent.end_user,
                                                         server=catalogue_scope)
        for key in mcp_config.value_keys(entry):
            item = {"server": server_name, "credential": key, "kind": "value", "connection": scope}
            if key in oauth_values:
                continue
            if key not in held:
                state["missing"].append(item)
            elif held[key] == "unverified":
                state["unverified"].append(item)
        state["missing"] += [{"server": server_name, "credential": key, "kind": "file", "connection": scope}
                             for key in mcp_config.file_keys(entry) if key not in files and key not in oauth_files]
    return state


def remote_token_apply(*, agent: Any, spec: LaunchSpec, actor: Any, reason: str,
                       rejected_access_token: str | None = None) -> bool:
    """Give a remote server's start the end user's MCP authorization token (`Authorization: Bearer`, redacted like
    every header value), refreshed first when it has expired or is `rejected_access_token`. An Authorization
    header the agent's own config sets wins. False when the end user has no usable authorization for the URL."""
    if spec.transport == "stdio" or (any(k.lower() == "authorization" for k in spec.headers) and not spec.vault_bearer):
        return False
    token = mcp_token_for_use(client=agent.client, end_user=agent.end_user, server_url=spec.url, actor=actor,
                              reason=reason, rejected_access_token=rejected_access_token)
    if token is None:
        return False
    spec.headers = {**{k: v for k, v in spec.headers.items() if k.lower() != "authorization"},
                    "Authorization": f"Bearer {token.access_token}"}
    spec.vault_bearer = True
    return True
