import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    """Turns (Conversation) move out of the sessions app into agents_app, table and rows included, so agents_app never
    imports sessions_app; agents get the end user their client names."""

    dependencies = [
        ('agents_app', '0005_runs_events_triggers'),
        ('sessions_app', '0002_auditevent_credential_storedfile'),
    ]

    operations = [
        migrations.AddField(
            model_name='agent',
            name='end_user',
            field=models.CharField(blank=True, db_index=True, default='', max_length=200),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Conversation',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('role', models.CharField(choices=[('user', 'User'), ('assistant', 'Assistant'), ('tool', 'Tool'), ('system', 'System')], max_length=20)),
                        ('message', models.TextField()),
                        ('metadata', models.JSONField(blank=True, default=dict)),
                        ('timestamp', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('agent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='turns', to='agents_app.agent')),
                        ('session', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='turns', to='sessions_app.session')),
                    ],
                    options={
                        'ordering': ['timestamp', 'id'],
                        'db_table': 'sessions_app_conversation',
                    },
                ),
            ],
        ),
        migrations.AlterModelTable(name='conversation', table=None),
    ]
