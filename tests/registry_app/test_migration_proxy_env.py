"""A catalogue loaded before launch recipes named proxy variables: migrating gives its Slack server's npm recipe
the variable the bundled catalogue now names (its agents keep reaching Slack), and no other recipe any."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("registry_app", "0005_server_egress_hosts")]


@pytest.mark.django_db(transaction=True)
def test_the_slack_recipe_of_an_existing_catalogue_gets_its_proxy_variable():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    executor.loader.build_graph()
    old = executor.loader.project_state(BEFORE).apps
    server_model, recipe_model = old.get_model("registry_app", "McpServer"), old.get_model("registry_app",
                                                                                         "LaunchRecipe")
    slack = server_model.objects.create(slug="slack-conversations", name="Slack MCP Server")
    other = server_model.objects.create(slug="time", name="Time")
    recipe_model.objects.create(server=slack, kind="npm", identifier="slack-mcp-server", command="npx",
                                args=["-y", "slack-mcp-server", "--transport", "stdio"])
    recipe_model.objects.create(server=other, kind="pypi", identifier="mcp-server-time", command="uvx",
                                args=["mcp-server-time"])

    call_command("migrate", verbosity=0)

    from registry_app.models import LaunchRecipe

    assert dict(LaunchRecipe.objects.values_list("identifier", "proxy_env")) == {
        "slack-mcp-server": ["SLACK_MCP_PROXY"], "mcp-server-time": []}
