"""The interactive API docs (Swagger UI, Redoc) load only files we serve ourselves: they work offline."""

import re

import pytest

ASSET_RE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_reference_no_external_host_and_their_files_are_served(anon_api, db, page):
    response = anon_api.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assets = ASSET_RE.findall(html)
    assert assets, html[:500]
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), "the page names another host"
    for url in assets:
        assert url.startswith("/"), url
        served = anon_api.get(url)
        assert served.status_code == 200, url
        body = b"".join(served.streaming_content) if served.streaming else served.content
        assert len(body) > 100, url


def test_swagger_start_up_script_is_a_file_not_inline(anon_api, db):
    html = anon_api.get("/api/docs/").content.decode()
    # Every <script> has a src: nothing for a Content-Security-Policy to forbid.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    script = anon_api.get("/api/docs/?script=")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content
