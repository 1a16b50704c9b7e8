"""Sessions and agents point to vault entries instead of holding copies: the reference table, and the old
per-holder unique constraints dropped (0004 merges the copies, 0005 removes the holder columns)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vault', '0002_credential_verification'),
    ]

    operations = [
        migrations.CreateModel(
            name='VaultReference',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('session_id', models.UUIDField(blank=True, db_index=True, null=True)),
                ('agent_id', models.UUIDField(blank=True, db_index=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('credential', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                                 related_name='references', to='vault.credential')),
                ('stored_file', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                                  related_name='references', to='vault.storedfile')),
            ],
            options={
                'constraints': [
                    models.CheckConstraint(condition=models.Q(('credential__isnull', True), ('stored_file__isnull', True), _connector='XOR'), name='vault_reference_one_entry'),
                    models.CheckConstraint(condition=models.Q(('session_id__isnull', True), ('agent_id__isnull', True), _connector='XOR'), name='vault_reference_one_holder'),
                    models.UniqueConstraint(condition=models.Q(('session_id__isnull', False)), fields=('credential', 'session_id'), name='vault_reference_credential_session'),
                    models.UniqueConstraint(condition=models.Q(('agent_id__isnull', False)), fields=('credential', 'agent_id'), name='vault_reference_credential_agent'),
                    models.UniqueConstraint(condition=models.Q(('session_id__isnull', False)), fields=('stored_file', 'session_id'), name='vault_reference_file_session'),
                    models.UniqueConstraint(condition=models.Q(('agent_id__isnull', False)), fields=('stored_file', 'agent_id'), name='vault_reference_file_agent'),
                ],
            },
        ),
        migrations.RemoveConstraint(model_name='credential', name='sessions_credential_session_unique'),
        migrations.RemoveConstraint(model_name='credential', name='sessions_credential_agent_unique'),
        migrations.RemoveConstraint(model_name='storedfile', name='sessions_file_session_key_unique'),
    ]
