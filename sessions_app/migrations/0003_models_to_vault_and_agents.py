from django.db import migrations, models


class Migration(migrations.Migration):
    """State only: Credential, StoredFile and AuditEvent now belong to the vault (mcpagent.vault, migration
    0001 takes their tables over), Conversation to agents_app (0005). Sessions get the end user their client
    names."""

    dependencies = [
        ('sessions_app', '0002_auditevent_credential_storedfile'),
        ('vault', '0001_move_from_sessions_app'),
        ('agents_app', '0006_agent_end_user_conversation'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='AuditEvent'),
                migrations.DeleteModel(name='Credential'),
                migrations.DeleteModel(name='StoredFile'),
                migrations.DeleteModel(name='Conversation'),
            ],
        ),
        migrations.AddField(
            model_name='session',
            name='end_user',
            field=models.CharField(blank=True, db_index=True, default='', max_length=200),
        ),
    ]
