"""Reusable checks that no secret reaches the database: every column of every table, read with raw SQL.

A value can hide behind an encoding: bytea columns read as text are hex (\\x...), and a careless service could
store base64. Each secret is therefore searched as text, as lowercase hex, and as base64 at all three byte
alignments (the middle of the encoding, which does not depend on the bytes around it)."""

import base64
import secrets as _secrets

from django.db import connection


def encodings(secret: str | bytes) -> list[str]:
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    forms = {raw.hex()}
    if isinstance(secret, str):
        forms.add(secret)
    else:
        try:
            forms.add(secret.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    for offset in range(3):
        chunk = raw[offset:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 12:
            forms.add(base64.b64encode(chunk).decode("ascii")[4:-4])
    return [form for form in forms if len(form) >= 8]


def database_text() -> dict[str, list[str]]:
    """{table: [every row, all columns cast to text and joined]} for every table of the public schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
        columns: dict[str, list[str]] = {}
        for table, column in cursor.fetchall():
            columns.setdefault(table, []).append(column)
        dump = {}
        for table, names in columns.items():
            cast = ", ".join(f'coalesce({connection.ops.quote_name(n)}::text, \'\')' for n in names)
            cursor.execute(f"SELECT concat_ws(' | ', {cast}) FROM {connection.ops.quote_name(table)}")
            dump[table] = [row[0] for row in cursor.fetchall()]
    return dump


def assert_no_plaintext_in_db(secrets: list[str | bytes]) -> dict[str, list[str]]:
    """Fail naming the table (never printing the row) if any secret appears anywhere; returns the dump."""
    dump = database_text()
    forms = [(i, form) for i, secret in enumerate(secrets) for form in encodings(secret)]
    leaks = sorted(
        {(table, i) for table, rows in dump.items() for row in rows for i, form in forms if form in row}
    )
    assert not leaks, f"secret(s) found in the database: {[(table, f'secret #{i}') for table, i in leaks]}"
    return dump


def fake_secrets() -> dict[str, str]:
    """Realistically shaped, never-real values, unique per call so no earlier run can satisfy a search."""
    def alnum(n: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(_secrets.choice(alphabet) for _ in range(n))

    return {
        "SLACK_BOT_TOKEN": f"xoxb-{_secrets.randbelow(10**10):010d}-{_secrets.randbelow(10**12):012d}-{alnum(24)}",
        "GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_" + alnum(36),
        "OPENAI_API_KEY": "sk-proj-" + alnum(40),
        "NOTION_API_KEY": "ntn_" + alnum(46),
        "STRIPE_SECRET_KEY": "sk_test_" + alnum(32),
        "AWS_ACCESS_KEY_ID": "AKIA" + "".join(_secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
        "AWS_SECRET_ACCESS_KEY": alnum(40),
        "DB_PASSWORD": "pw-" + alnum(12),
    }
