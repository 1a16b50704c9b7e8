"""The admin in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium, never a browser Playwright
downloads) against a live server: staff login, the dashboard's charts, the server list's columns and a server's
change page, at 1,400 px wide. Screenshots go to test-artifacts/ (kept by CI, ignored by git)."""

import os
import shutil
from pathlib import Path

import pytest

from registry_app.models import ServerSource, ServerTool
from tests.registry_app.test_admin import make_server
from tests.registry_app.usage_data import build_usage

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "browser-test-password-8842"
WIDTH = 1400

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)),
    reason=f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` (make test's CI does)",
)


@pytest.fixture
def catalogue_with_usage(transactional_db, django_user_model):
    slack = make_server(name="Slack MCP Server", slug="slack", tools=3, credentials=("SLACK_BOT_TOKEN",))
    notion = make_server(name="Notion", slug="notion")
    gmail = make_server(name="Gmail", slug="gmail", sources=())
    ServerSource.objects.create(server=gmail, source="native", source_id="gmail", location="servers.json#servers[7]",
                                data={"provenance": [{"source": "docker", "source_id": "gmail",
                                                      "location": "servers/gmail/server.yaml"}]})
    ServerTool.objects.create(server=gmail, name="send_email", source="docker", input_schema={
        "type": "object", "required": ["to"], "properties": {"to": {"type": "string", "description": "Recipient"}}})
    build_usage(slack, notion, gmail)
    django_user_model.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    return {"slack": slack, "gmail": gmail}


def _no_sideways_scroll(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the {WIDTH} px window"


def test_staff_sees_dashboard_and_curation_pages(live_server, catalogue_with_usage):
    ARTIFACTS.mkdir(exist_ok=True)
    gmail = catalogue_with_usage["gmail"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text)
                    if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
            # Every file a page loads is there (the browser's own favicon.ico guess aside).
            page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
                    if response.status >= 400 and not response.url.endswith("/favicon.ico") else None)

            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "staff")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{live_server.url}/admin/")
            page.click("#ops-dashboard-link a")

            page.wait_for_selector("#ops-dashboard")
            assert page.locator("#ops-agents svg rect.ops-bar").count() >= 2
            assert page.locator("#ops-runs svg rect.ops-bar").count() >= 1
            assert page.locator("#ops-agents svg").bounding_box()["height"] > 100  # drawn, not collapsed
            assert page.locator("#ops-used-servers tbody tr").first.inner_text().startswith("Slack MCP Server")
            assert page.locator("#ops-workflow-types").inner_text().count("gmail") >= 1
            _no_sideways_scroll(page)
            page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)

            page.goto(f"{live_server.url}/admin/registry_app/mcpserver/?q=slack")
            for column in ("runnable_here", "times_chosen", "agents_using", "last_validation", "tools_count"):
                assert page.locator(f"th.column-{column}").is_visible(), column
            assert page.locator("#result_list tbody tr").first.inner_text().strip().startswith("Slack MCP Server")
            _no_sideways_scroll(page)
            page.screenshot(path=str(ARTIFACTS / "admin-server-list.png"), full_page=True)
            hidden = page.evaluate("(() => { const r = document.querySelector('.results'); "
                                   "return r.scrollWidth - r.clientWidth; })()")
            assert hidden <= 0, f"{hidden} px of the server list's columns need scrolling"

            page.goto(f"{live_server.url}/admin/registry_app/mcpserver/{gmail.pk}/change/")
            link = page.locator(".catalogue-source a").first
            assert link.get_attribute("href") == \
                "https://github.com/docker/mcp-registry/blob/HEAD/servers/gmail/server.yaml"
            assert "servers.json#servers" not in page.content()
            page.locator("#tools-group summary, #tools-group h2").first.click()  # open the collapsed tools
            assert page.locator(".catalogue-param code", has_text="to").first.is_visible()
            _no_sideways_scroll(page)
            page.screenshot(path=str(ARTIFACTS / "admin-server-change.png"), full_page=True)
            assert not errors, errors  # nothing blocked by the Content-Security-Policy, no script errors
        finally:
            browser.close()
