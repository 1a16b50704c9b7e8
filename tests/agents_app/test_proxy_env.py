"""Servers whose HTTP client takes its proxy only from a variable of its own: the catalogue's launch recipe names
it (LaunchRecipe.proxy_env), and the sandbox sets it to the egress proxy for that server alone. Real catalogue
rows, a real agent, real sandboxes (bubblewrap, with the egress proxy) and the real bundled catalogue."""

import json
import subprocess
from pathlib import Path

from agents_app import mcp_config, runtime
from agents_app.models import Agent
from agents_app.sandbox import bwrap
from agents_app.services import launch_specs
from registry_app.importers.native import read as read_native
from registry_app.models import LaunchRecipe, McpServer

# What a started server sees of the proxy variables, as JSON on stdout.
SHOW_ENV = ("import json, os; print(json.dumps({n: os.environ.get(n) for n in "
            "('SLACK_MCP_PROXY', 'OTHER_PROXY_VAR', 'HTTPS_PROXY', 'PATH')}))")


def _catalogue_server(slug: str, proxy_env: list[str]) -> LaunchRecipe:
    server = McpServer.objects.create(slug=slug, name=slug)
    return LaunchRecipe.objects.create(server=server, kind="other", identifier="", command="python",
                                       args=["-c", SHOW_ENV], proxy_env=proxy_env)


def _seen_inside(spec: mcp_config.LaunchSpec) -> dict:
    with runtime.sandbox_launch(spec, tag=runtime.new_process_tag()) as launch:
        done = subprocess.run([launch.command, *launch.args], env=launch.env, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_only_the_server_whose_recipe_names_the_variable_gets_the_proxy_in_it(api):
    servers = {"slack-like": _catalogue_server("slack-like", ["SLACK_MCP_PROXY"]),
               "plain": _catalogue_server("plain", [])}
    entries = {}
    for slug, recipe in servers.items():
        entries[slug] = {**mcp_config.entry_from_recipe(recipe, env_keys=[], header_keys=[]), "catalogue": slug}
    agent = Agent.objects.create(client=api.client_obj, mcp_config={"mcpServers": entries})

    specs = {spec.name: spec for spec in launch_specs(agent, reason="test")}
    assert specs["slack-like"].proxy_env == ["SLACK_MCP_PROXY"] and specs["plain"].proxy_env == []

    proxied, plain = _seen_inside(specs["slack-like"]), _seen_inside(specs["plain"])
    proxy_url = f"http://127.0.0.1:{bwrap.PROXY_PORT}"
    assert proxied["SLACK_MCP_PROXY"] == proxied["HTTPS_PROXY"] == proxy_url
    assert plain["SLACK_MCP_PROXY"] is None and plain["HTTPS_PROXY"] == proxy_url
    assert proxied["OTHER_PROXY_VAR"] is None and proxied["PATH"] == plain["PATH"]


def test_the_variables_are_those_of_the_recipe_the_server_was_made_from(api):
    recipe = _catalogue_server("two-recipes", [])
    npm = LaunchRecipe.objects.create(server=recipe.server, kind="npm", identifier="some-go-server", version="1.2.0",
                                      proxy_env=["OTHER_PROXY_VAR"])
    entries = {name: {**mcp_config.entry_from_recipe(r, env_keys=[], header_keys=[]), "catalogue": "two-recipes"}
               for name, r in (("python-one", recipe), ("npm-one", npm))}
    assert entries["npm-one"]["args"] == ["-y", "some-go-server@1.2.0"]
    entries["a-fork"] = {**entries["npm-one"], "args": ["-y", "some-go-server-fork"]}
    agent = Agent.objects.create(client=api.client_obj, mcp_config={"mcpServers": entries})
    found = {spec.name: spec.proxy_env for spec in launch_specs(agent, reason="test")}
    assert found == {"python-one": [], "npm-one": ["OTHER_PROXY_VAR"], "a-fork": []}


def test_the_sandbox_env_never_lets_a_recipe_replace_its_own_variables():
    env = bwrap.sandbox_env(proxy=True, proxy_env=["SLACK_MCP_PROXY", "PATH", "HOME", "not a name", "LD_PRELOAD="])
    assert env["SLACK_MCP_PROXY"] == f"http://127.0.0.1:{bwrap.PROXY_PORT}"
    assert env["PATH"] == bwrap.sandbox_env(proxy=True)["PATH"] and env["HOME"] == bwrap.SANDBOX_HOME
    assert "not a name" not in env and "LD_PRELOAD=" not in env
    assert "SLACK_MCP_PROXY" not in bwrap.sandbox_env(proxy=True)  # no recipe asked for it
    assert "SLACK_MCP_PROXY" not in bwrap.sandbox_env(proxy=False, proxy_env=["SLACK_MCP_PROXY"])  # no proxy


def test_the_bundled_catalogue_names_the_slack_servers_proxy_variable():
    """config/servers.json (rebuilt from config/catalogue_corrections.json) as the importer reads it."""
    batch = read_native(Path(__file__).resolve().parents[2] / "config" / "servers.json")
    wanted = ("slack-conversations", "notionhq-notion-mcp-server")
    recipes = {r.slug: r.launch for r in batch.records if r.slug in wanted}
    assert [x.proxy_env for x in recipes["slack-conversations"]] == [["SLACK_MCP_PROXY"]]
    assert all(not x.proxy_env for x in recipes["notionhq-notion-mcp-server"])
