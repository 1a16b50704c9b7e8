"""Staff register an OAuth app in the admin: the client secret is typed in, stored encrypted and never shown;
plain http endpoints are refused unless they point at this machine."""

from django.db import connection
from django.urls import reverse

from mcpagent.vault.models import OAuthApp

ADD = reverse("admin:vault_oauthapp_add")
SECRET = "GOCSPX-sEcReT-value-9f3a"


def _form(**extra):
    return {"provider": "google", "client_id": "1234-abc.apps.googleusercontent.com", "scopes": "",
            "authorization_endpoint": "", "token_endpoint": "", "revocation_endpoint": "", "userinfo_endpoint": "",
            "is_active": "on", "client_secret_input": SECRET, **extra}


def test_add_stores_the_secret_encrypted_and_never_shows_it(admin_client):
    response = admin_client.post(ADD, _form())
    assert response.status_code == 302, response.content.decode()[:2000]
    app = OAuthApp.objects.get()
    assert app.client_secret == SECRET
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM vault_oauthapp")
        assert SECRET.encode() not in bytes(cursor.fetchone()[0])
    page = admin_client.get(reverse("admin:vault_oauthapp_change", args=[app.pk]))
    assert page.status_code == 200 and SECRET not in page.content.decode()
    # Saved again with the secret left empty: the stored one stays.
    form = _form(client_secret_input="", scopes="openid email")
    assert admin_client.post(reverse("admin:vault_oauthapp_change", args=[app.pk]), form).status_code == 302
    app.refresh_from_db()
    assert app.client_secret == SECRET and app.scopes == "openid email"


def test_plain_http_endpoint_only_on_this_machine(admin_client):
    response = admin_client.post(ADD, _form(token_endpoint="http://auth.example.com/token"))
    assert response.status_code == 200 and "Use https" in response.content.decode()
    assert not OAuthApp.objects.exists()
    assert admin_client.post(ADD, _form(token_endpoint="http://127.0.0.1:8999/token")).status_code == 302


def test_a_new_app_needs_its_secret(admin_client):
    response = admin_client.post(ADD, _form(client_secret_input=""))
    assert response.status_code == 200 and not OAuthApp.objects.exists()
