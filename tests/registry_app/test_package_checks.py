"""check_catalogue_packages against a fake PyPI JSON API on 127.0.0.1 (real HTTP), and build_default_catalogue's use
of its output (recipes of packages PyPI does not have are dropped)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command

from registry_app.importers.native import record_from_entry, write
from registry_app.management.commands.build_default_catalogue import drop_missing_packages


class FakePyPI:
    """GET /pypi/<name>/json: 200 for `present`, 503 the first `flaky` times for a name, 404 otherwise."""

    def __init__(self, present: set[str], flaky: dict[str, int] | None = None, always: int | None = None):
        self.present, self.flaky, self.always = set(present), dict(flaky or {}), always
        self.asked: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.split("/")[2]
                fake.asked.append(name)
                if fake.always:
                    status = fake.always
                elif fake.flaky.get(name, 0) > 0:
                    fake.flaky[name] -= 1
                    status = 503
                else:
                    status = 200 if name in fake.present else 404
                body = json.dumps({"info": {"name": name}} if status == 200 else {"message": "Not Found"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def server(slug: str, *recipes: dict):
    return record_from_entry({"slug": slug, "name": slug, "launch": list(recipes)}, slug, [])


def pypi(name: str) -> dict:
    return {"kind": "pypi", "identifier": name, "command": "uvx", "args": [name]}


@pytest.fixture
def catalogue(tmp_path):
    path = tmp_path / "servers.json"
    write(path, [
        server("real", pypi("Real_Pkg")),
        server("gone", pypi("gone-pkg"), {"kind": "npm", "identifier": "gone-pkg", "command": "npx",
                                           "args": ["-y", "gone-pkg"]}),
        server("flaky", pypi("flaky.pkg")),
    ], sources=[])
    return path


def run(catalogue, output, url, capsys) -> str:
    call_command("check_catalogue_packages", catalogue=str(catalogue), output=str(output), pypi_url=url,
                 concurrency=4)
    return capsys.readouterr().out


def test_missing_packages_are_recorded_and_rechecked_later(catalogue, tmp_path, capsys):
    output = tmp_path / "package_checks.json"
    with FakePyPI({"real-pkg", "flaky-pkg"}, flaky={"flaky-pkg": 2}) as fake:
        out = run(catalogue, output, fake.url, capsys)
    assert json.loads(output.read_text())["pypi_missing"] == ["gone-pkg"]
    assert "2 present, 1 missing, 0 unanswered" in out
    assert sorted(set(fake.asked)) == ["flaky-pkg", "gone-pkg", "real-pkg"]  # names as PyPI normalises them
    assert fake.asked.count("flaky-pkg") == 3  # retried after two 503s

    # A rebuilt catalogue no longer names gone-pkg; the next check still asks about it, and forgets it once
    # PyPI has it.
    write(catalogue, [server("real", pypi("real-pkg"))], sources=[])
    with FakePyPI({"real-pkg"}) as fake:
        run(catalogue, output, fake.url, capsys)
    assert sorted(fake.asked) == ["gone-pkg", "real-pkg"]
    assert json.loads(output.read_text())["pypi_missing"] == ["gone-pkg"]
    with FakePyPI({"real-pkg", "gone-pkg"}) as fake:
        run(catalogue, output, fake.url, capsys)
    assert json.loads(output.read_text())["pypi_missing"] == []


def test_an_unanswered_package_keeps_what_the_last_check_found(catalogue, tmp_path, capsys):
    output = tmp_path / "package_checks.json"
    output.write_text('{"pypi_missing": ["gone-pkg", "flaky-pkg"]}')
    # gone-pkg gets no clear answer (503 on every try); flaky-pkg was missing and now exists.
    with FakePyPI({"real-pkg", "flaky-pkg"}, flaky={"gone-pkg": 3}) as fake:
        out = run(catalogue, output, fake.url, capsys)
    assert fake.asked.count("gone-pkg") == 3
    assert json.loads(output.read_text())["pypi_missing"] == ["gone-pkg"]
    assert "2 present, 0 missing, 1 unanswered (gone-pkg: left as they are)" in out


def test_an_index_that_answers_nothing_changes_nothing(catalogue, tmp_path, capsys):
    output = tmp_path / "package_checks.json"
    output.write_text('{"pypi_missing": ["kept"]}')
    with FakePyPI(set(), always=500) as fake, pytest.raises(CommandError, match="answered none"):
        run(catalogue, output, fake.url, capsys)
    assert json.loads(output.read_text()) == {"pypi_missing": ["kept"]}


def test_the_build_drops_recipes_of_missing_packages_only(tmp_path):
    checks = tmp_path / "package_checks.json"
    checks.write_text(json.dumps({"pypi_missing": ["gone-pkg"]}))
    servers = [server("gone", pypi("Gone_Pkg"), {"kind": "npm", "identifier": "gone-pkg", "command": "npx",
                                                  "args": ["-y", "gone-pkg"]}),
               server("real", pypi("real-pkg"))]
    assert drop_missing_packages(servers, checks) == 1
    assert [(r.kind, r.identifier) for r in servers[0].launch] == [("npm", "gone-pkg")]  # npm is not PyPI's
    assert [r.identifier for r in servers[1].launch] == ["real-pkg"]
    assert drop_missing_packages(servers, tmp_path / "absent.json") == 0
