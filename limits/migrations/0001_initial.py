import django.db.models.deletion
import limits.models
from django.db import migrations, models

# The schema of rate_limit_counters fixes these index names, which exceed the 30 characters
# Django accepts in Meta.indexes, so they are plain SQL (valid on PostgreSQL and SQLite).
RATE_LIMIT_INDEXES = [
    ("idx_rate_limit_counters_tenant_scope", "tenant_id, scope"),
    ("idx_rate_limit_counters_window_start", "window_start"),
    ("idx_rate_limit_counters_updated_at", "updated_at"),
]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('tenants', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='RateLimitCounter',
            fields=[
                ('counter_key', limits.models.PlainTextField(primary_key=True, serialize=False)),
                ('tenant_id', models.TextField()),
                ('scope', models.TextField()),
                ('window_start', models.DateTimeField()),
                ('window_seconds', models.IntegerField()),
                ('count', models.IntegerField(db_default=0, default=0)),
                ('created_at', models.DateTimeField(db_default=limits.models.TransactionNow())),
                ('updated_at', models.DateTimeField(db_default=limits.models.TransactionNow())),
            ],
            options={
                'db_table': 'rate_limit_counters',
            },
        ),
        migrations.CreateModel(
            name='IdempotencyKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=255)),
                ('fingerprint', models.CharField(max_length=64)),
                ('status', models.CharField(choices=[('in_progress', 'In Progress'), ('completed', 'Completed')], max_length=16)),
                ('claim_token', models.UUIDField()),
                ('locked_until', models.DateTimeField()),
                ('response_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('response_body', models.TextField(blank=True, default='')),
                ('event_id', models.UUIDField(blank=True, null=True)),
                ('created_at', models.DateTimeField()),
                ('expires_at', models.DateTimeField()),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
            ],
            options={
                'db_table': 'idempotency_keys',
                'indexes': [models.Index(fields=['expires_at'], name='idempotency_expires_idx')],
                'constraints': [models.UniqueConstraint(fields=('tenant', 'key'), name='idempotency_tenant_key_uniq')],
            },
        ),
        migrations.CreateModel(
            name='MonthlyUsage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('month', models.DateField()),
                ('events', models.IntegerField(db_default=0, default=0)),
                ('attempts', models.IntegerField(db_default=0, default=0)),
                ('updated_at', models.DateTimeField(db_default=limits.models.TransactionNow())),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
            ],
            options={
                'db_table': 'usage_counters',
                'constraints': [models.UniqueConstraint(fields=('tenant', 'month'), name='usage_counters_tenant_month_uniq')],
            },
        ),
    ] + [
        migrations.RunSQL(
            f"CREATE INDEX {name} ON rate_limit_counters ({columns})",
            f"DROP INDEX {name}",
        )
        for name, columns in RATE_LIMIT_INDEXES
    ]
