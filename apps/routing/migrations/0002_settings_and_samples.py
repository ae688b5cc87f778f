"""Routing settings per tenant, and the router's memory: routing_sample, hash-partitioned
by tenant (16 partitions) like the cache, with an HNSW index per partition over the
labelled rows only (the predictor reads nothing else). Django cannot create partitioned
tables, so the database side is SQL and the state side the RoutingSample model."""

import apps.routing.models
import django.core.validators
import django.db.models.deletion
import pgvector.django.vector
from django.db import migrations, models


PARTITIONS = 16

CREATE = f"""
CREATE TABLE routing_sample (
    id bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id bigint NOT NULL REFERENCES tenants_tenant (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    request_id varchar(40) NOT NULL,
    model varchar(100) NOT NULL,
    task varchar(20) NOT NULL,
    embedding vector(384) NOT NULL,
    good double precision NULL,
    label_source varchar(10) NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
) PARTITION BY HASH (tenant_id);
ALTER TABLE routing_sample ALTER COLUMN embedding SET STORAGE PLAIN;
{"".join(f"CREATE TABLE routing_sample_p{i} PARTITION OF routing_sample FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {i});" for i in range(PARTITIONS))}
CREATE UNIQUE INDEX routing_sample_call ON routing_sample (tenant_id, request_id, model);
CREATE INDEX routing_sample_labelled ON routing_sample USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE good IS NOT NULL;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_vector_extension'),
        ('routing', '0001_initial'),
        ('tenants', '0006_move_cache_settings_to_cache'),
    ]

    operations = [
        migrations.CreateModel(
            name='RoutingSettings',
            fields=[
                ('tenant', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='tenants.tenant')),
                ('pool', models.JSONField(default=apps.routing.models.default_pool, help_text='catalog model ids, cheapest first, strongest last')),
                ('aliases', models.JSONField(blank=True, default=dict, help_text='model names routed within their own pool, e.g. {"aka:support": [...]}')),
                ('allow_substitution', models.BooleanField(default=False, help_text='route calls naming a model of the pool too (not only `auto` and aliases)')),
                ('quality_floor', models.FloatField(default=0.95, help_text="share of the strongest model's quality a cheaper model must be predicted to keep", validators=[django.core.validators.MinValueValidator(0.5), django.core.validators.MaxValueValidator(1.0)])),
                ('speculation', models.CharField(choices=[('off', 'Off'), ('cascade', 'cascade: cheap first, strong only when the judge rejects'), ('race', 'race: cheap and strong at once, strong cancelled on accept'), ('selective', 'selective race: race only when the cheap answer is at risk')], default='off', max_length=12)),
                ('buffered_speculation', models.BooleanField(default=False, help_text='streaming calls speculate too (the answer starts once it is accepted)')),
                ('judge', models.CharField(choices=[('heuristic', 'Heuristic'), ('logprob', 'mean token log-probability'), ('llm', 'LLM as judge')], default='heuristic', max_length=12)),
                ('judge_threshold', models.FloatField(default=0.5, help_text='judge score (0-1) a draft needs to be served', validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)])),
                ('judge_model', models.CharField(default='gpt-4o-mini', help_text="the LLM judge's model", max_length=100)),
                ('exploration', models.FloatField(default=0.05, help_text='largest share of routed calls decided by Thompson sampling instead of the best estimate', validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(0.2)])),
            ],
            options={
                'verbose_name_plural': 'routing settings',
            },
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE, "DROP TABLE routing_sample CASCADE;")],
            state_operations=[
                migrations.CreateModel(
                    name='RoutingSample',
                    fields=[
                        ('pk', models.CompositePrimaryKey('tenant_id', 'id', blank=True, editable=False, primary_key=True, serialize=False)),
                        ('id', models.BigIntegerField()),
                        ('request_id', models.CharField(max_length=40)),
                        ('model', models.CharField(max_length=100)),
                        ('task', models.CharField(max_length=20)),
                        ('embedding', pgvector.django.vector.VectorField(dimensions=384)),
                        ('good', models.FloatField(null=True)),
                        ('label_source', models.CharField(default='', max_length=10)),
                        ('created_at', models.DateTimeField()),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'routing_sample',
                    },
                ),
            ],
        ),
    ]
