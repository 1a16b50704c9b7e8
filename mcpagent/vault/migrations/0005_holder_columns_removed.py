"""Entries no longer name a holder (sessions and agents reference them, see 0003/0004): the holder columns go and
an entry is unique per (client, end user, server, key)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vault', '0004_entries_shared_by_reference'),
    ]

    operations = [
        migrations.RemoveField(model_name='credential', name='agent_id'),
        migrations.RemoveField(model_name='credential', name='session_id'),
        migrations.RemoveField(model_name='storedfile', name='agent_id'),
        migrations.RemoveField(model_name='storedfile', name='session_id'),
        migrations.AddConstraint(
            model_name='credential',
            constraint=models.UniqueConstraint(fields=('client', 'end_user', 'server', 'key'), name='vault_credential_entry_unique'),
        ),
        migrations.AddConstraint(
            model_name='storedfile',
            constraint=models.UniqueConstraint(condition=models.Q(('key', ''), _negated=True), fields=('client', 'end_user', 'server', 'key'), name='vault_file_entry_unique'),
        ),
    ]
