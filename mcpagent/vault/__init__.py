"""The credentials vault: secrets and credential files of an API client (and of an end user the client names),
stored encrypted, read only through audited calls, expiring.

It sits below sessions and agents and imports only core (`mcpagent.*`). What it needs to know about a server's
settings (catalogue requirements, curated formats and file recipes) the caller passes in as CredentialRules.
A value is one entry per (client, end user, server, key); the sessions and agents that use it hold a reference
(VaultReference, by plain `session_id` / `agent_id`), never a copy, so the vault never imports the apps above it.

Modules, one job each: models, audit (actors and the trail), holders (ownership, scope, lifetime), store
(credential values), files (uploaded files), materialize (decrypted files on disk while a server runs),
expiry (purge), formats (value checks and masks), filecheck (file checks), rules (the caller's knowledge),
verify (live token checks), connections (connected accounts) and apis (their endpoints). OAuth: oauth_presets
(providers), oauth_client (authlib calls), oauth_states (one-time states), oauth_flow (the authorization link and its
callback), oauth_tokens (saved, refreshed, revoked tokens), oauth_apis (the callback, our client metadata document).
Remote MCP servers' MCP authorization: mcp_auth_discovery (metadata and client registration, with the mcp SDK's
helpers), mcp_auth_flow (link, callback, tokens in use).
"""
