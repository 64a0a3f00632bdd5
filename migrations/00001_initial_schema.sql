-- config-server's squashed initial schema (replaces the pre-squash files 001..009).
--
-- Conventions, matching what GORM expects of a Go model with gorm.Model:
--   * id bigserial primary key; created_at / updated_at timestamptz set by GORM (defaults for manual SQL);
--   * soft delete: deleted_at timestamptz NULL; a row with deleted_at set is gone for the application, so
--     every "name is unique" rule is a partial unique index WHERE deleted_at IS NULL: a name can be
--     re-created after the old row was soft-deleted;
--   * foreign keys (fk_<table>_<parent>) and checks (chk_<table>_<column>) are added by guarded ALTERs
--     (below), so that a table that already exists without them (CREATE TABLE IF NOT EXISTS leaves it
--     untouched) still gets them;
--   * every statement is idempotent: running this Up twice succeeds and changes nothing; over a table that
--     already exists it adds the timestamp/soft-delete columns, constraints and indexes that are missing.
--
-- ON DELETE: a hard delete (purge) of a parent removes what only exists through it (CASCADE); a template
-- still used by rules or checks cannot be purged (RESTRICT); an optional link is cleared (SET NULL).

-- +goose Up

CREATE TABLE IF NOT EXISTS namespaces (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- A group of targets inside a namespace (e.g. "databases", "edge-routers").
CREATE TABLE IF NOT EXISTS groups (
    id           bigserial PRIMARY KEY,
    namespace_id bigint      NOT NULL,
    name         text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    labels       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);

-- A monitored host or endpoint.
CREATE TABLE IF NOT EXISTS targets (
    id           bigserial PRIMARY KEY,
    namespace_id bigint      NOT NULL,
    name         text        NOT NULL,
    address      text        NOT NULL,
    labels       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);

-- Many-to-many between targets and groups (GORM many2many join table: no id, no soft delete; a
-- membership is removed by deleting its row).
CREATE TABLE IF NOT EXISTS target_groups (
    target_id  bigint      NOT NULL,
    group_id   bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_id, group_id)
);

-- An exporter scraped on a target (node_exporter on :9100, postgres_exporter on :9187, ...).
CREATE TABLE IF NOT EXISTS exporters (
    id               bigserial PRIMARY KEY,
    target_id        bigint      NOT NULL,
    name             text        NOT NULL,
    type             text        NOT NULL,
    port             integer     NOT NULL,
    scheme           text        NOT NULL DEFAULT 'http',
    metrics_path     text        NOT NULL DEFAULT '/metrics',
    scrape_interval  interval    NOT NULL DEFAULT '30 seconds',
    scrape_timeout   interval    NOT NULL DEFAULT '10 seconds',
    config           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled          boolean     NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);

-- A reusable alert definition; expr may hold {{ .Param }} placeholders filled from a rule's parameters.
CREATE TABLE IF NOT EXISTS alert_templates (
    id           bigserial PRIMARY KEY,
    name         text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    expr         text        NOT NULL,
    for_duration interval    NOT NULL DEFAULT '0 seconds',
    severity     text        NOT NULL DEFAULT 'warning',
    labels       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    annotations  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    parameters   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);

-- An alert in a namespace, optionally instantiated from a template and optionally scoped to one group.
CREATE TABLE IF NOT EXISTS alert_rules (
    id           bigserial PRIMARY KEY,
    namespace_id bigint      NOT NULL,
    template_id  bigint,
    group_id     bigint,
    name         text        NOT NULL,
    expr         text        NOT NULL,
    for_duration interval    NOT NULL DEFAULT '0 seconds',
    severity     text        NOT NULL DEFAULT 'warning',
    labels       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    annotations  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    parameters   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);

-- A reusable synthetic check (http, tcp, icmp, dns, tls) with default settings.
CREATE TABLE IF NOT EXISTS check_templates (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    type        text        NOT NULL,
    config      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    interval    interval    NOT NULL DEFAULT '60 seconds',
    timeout     interval    NOT NULL DEFAULT '10 seconds',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- A check template applied to one target; config overrides the template's (merged by the server).
CREATE TABLE IF NOT EXISTS check_instances (
    id          bigserial PRIMARY KEY,
    template_id bigint      NOT NULL,
    target_id   bigint      NOT NULL,
    name        text        NOT NULL,
    config      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    interval    interval,
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- One-time / limited-use tokens with which an agent registers itself into a namespace (and group).
-- Only the SHA-256 of the token is stored (lowercase hex); the plaintext is shown once at creation.
CREATE TABLE IF NOT EXISTS bootstrap_tokens (
    id           bigserial PRIMARY KEY,
    namespace_id bigint      NOT NULL,
    group_id     bigint,
    token_hash   text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    expires_at   timestamptz NOT NULL,
    max_uses     integer,
    use_count    integer     NOT NULL DEFAULT 0,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);

-- Columns the application relies on, ensured on tables that existed before this file (CREATE TABLE IF NOT
-- EXISTS does not touch them): GORM's soft-delete and timestamp columns.
-- +goose StatementBegin
DO $$
DECLARE
    t text;
    c text;
BEGIN
    FOREACH t IN ARRAY ARRAY['namespaces', 'groups', 'targets', 'exporters', 'alert_templates',
                             'alert_rules', 'check_templates', 'check_instances', 'bootstrap_tokens'] LOOP
        FOREACH c IN ARRAY ARRAY['created_at', 'updated_at'] LOOP
            IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                           WHERE table_schema = current_schema() AND table_name = t AND column_name = c) THEN
                EXECUTE format('ALTER TABLE %I ADD COLUMN %I timestamptz NOT NULL DEFAULT now()', t, c);
            END IF;
        END LOOP;
        IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                       WHERE table_schema = current_schema() AND table_name = t AND column_name = 'deleted_at') THEN
            EXECUTE format('ALTER TABLE %I ADD COLUMN deleted_at timestamptz', t);
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- Foreign keys and checks, each added only when a constraint of that name is not on the table yet.
-- +goose StatementBegin
DO $$
DECLARE
    con record;
BEGIN
    FOR con IN
        SELECT * FROM (VALUES
            ('groups',           'fk_groups_namespace',
             'FOREIGN KEY (namespace_id) REFERENCES namespaces (id) ON DELETE CASCADE'),
            ('targets',          'fk_targets_namespace',
             'FOREIGN KEY (namespace_id) REFERENCES namespaces (id) ON DELETE CASCADE'),
            ('target_groups',    'fk_target_groups_target',
             'FOREIGN KEY (target_id) REFERENCES targets (id) ON DELETE CASCADE'),
            ('target_groups',    'fk_target_groups_group',
             'FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE CASCADE'),
            ('exporters',        'fk_exporters_target',
             'FOREIGN KEY (target_id) REFERENCES targets (id) ON DELETE CASCADE'),
            ('exporters',        'chk_exporters_port',
             'CHECK (port BETWEEN 1 AND 65535)'),
            ('exporters',        'chk_exporters_scheme',
             'CHECK (scheme IN (''http'', ''https''))'),
            ('alert_templates',  'chk_alert_templates_severity',
             'CHECK (severity IN (''info'', ''warning'', ''critical''))'),
            ('alert_rules',      'fk_alert_rules_namespace',
             'FOREIGN KEY (namespace_id) REFERENCES namespaces (id) ON DELETE CASCADE'),
            ('alert_rules',      'fk_alert_rules_template',
             'FOREIGN KEY (template_id) REFERENCES alert_templates (id) ON DELETE RESTRICT'),
            ('alert_rules',      'fk_alert_rules_group',
             'FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE SET NULL'),
            ('alert_rules',      'chk_alert_rules_severity',
             'CHECK (severity IN (''info'', ''warning'', ''critical''))'),
            ('check_templates',  'chk_check_templates_type',
             'CHECK (type IN (''http'', ''tcp'', ''icmp'', ''dns'', ''tls''))'),
            ('check_instances',  'fk_check_instances_template',
             'FOREIGN KEY (template_id) REFERENCES check_templates (id) ON DELETE RESTRICT'),
            ('check_instances',  'fk_check_instances_target',
             'FOREIGN KEY (target_id) REFERENCES targets (id) ON DELETE CASCADE'),
            ('bootstrap_tokens', 'fk_bootstrap_tokens_namespace',
             'FOREIGN KEY (namespace_id) REFERENCES namespaces (id) ON DELETE CASCADE'),
            ('bootstrap_tokens', 'fk_bootstrap_tokens_group',
             'FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE SET NULL'),
            -- A SHA-256 in hex, never a plaintext token.
            ('bootstrap_tokens', 'chk_bootstrap_tokens_token_hash',
             'CHECK (token_hash ~ ''^[0-9a-f]{64}$'')'),
            ('bootstrap_tokens', 'chk_bootstrap_tokens_uses',
             'CHECK (use_count >= 0 AND (max_uses IS NULL OR (max_uses > 0 AND use_count <= max_uses)))')
        ) AS c(table_name, constraint_name, definition)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                       WHERE conname = con.constraint_name
                         AND conrelid = format('%I', con.table_name)::regclass) THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s',
                           con.table_name, con.constraint_name, con.definition);
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- Names unique among live rows: a soft-deleted name can be taken again.
CREATE UNIQUE INDEX IF NOT EXISTS uq_namespaces_name ON namespaces (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uq_groups_namespace_name ON groups (namespace_id, name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uq_targets_namespace_name ON targets (namespace_id, name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uq_exporters_target_name ON exporters (target_id, name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uq_alert_templates_name ON alert_templates (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uq_alert_rules_namespace_name ON alert_rules (namespace_id, name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uq_check_templates_name ON check_templates (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uq_check_instances_target_name ON check_instances (target_id, name) WHERE deleted_at IS NULL;
-- Token lookups go by hash; a hash is unique whether or not its row is deleted.
CREATE UNIQUE INDEX IF NOT EXISTS uq_bootstrap_tokens_token_hash ON bootstrap_tokens (token_hash);

-- GORM adds "WHERE deleted_at IS NULL" to every query (its idx_<table>_deleted_at convention).
CREATE INDEX IF NOT EXISTS idx_namespaces_deleted_at ON namespaces (deleted_at);
CREATE INDEX IF NOT EXISTS idx_groups_deleted_at ON groups (deleted_at);
CREATE INDEX IF NOT EXISTS idx_targets_deleted_at ON targets (deleted_at);
CREATE INDEX IF NOT EXISTS idx_exporters_deleted_at ON exporters (deleted_at);
CREATE INDEX IF NOT EXISTS idx_alert_templates_deleted_at ON alert_templates (deleted_at);
CREATE INDEX IF NOT EXISTS idx_alert_rules_deleted_at ON alert_rules (deleted_at);
CREATE INDEX IF NOT EXISTS idx_check_templates_deleted_at ON check_templates (deleted_at);
CREATE INDEX IF NOT EXISTS idx_check_instances_deleted_at ON check_instances (deleted_at);
CREATE INDEX IF NOT EXISTS idx_bootstrap_tokens_deleted_at ON bootstrap_tokens (deleted_at);

-- Foreign-key columns. PostgreSQL does not index them itself, and the partial unique indexes above
-- skip soft-deleted rows, so a parent's purge (ON DELETE) would scan the child table without these.
-- target_groups.target_id is covered by the primary key (target_id, group_id).
CREATE INDEX IF NOT EXISTS idx_groups_namespace_id ON groups (namespace_id);
CREATE INDEX IF NOT EXISTS idx_targets_namespace_id ON targets (namespace_id);
CREATE INDEX IF NOT EXISTS idx_target_groups_group_id ON target_groups (group_id);
CREATE INDEX IF NOT EXISTS idx_exporters_target_id ON exporters (target_id);
CREATE INDEX IF NOT EXISTS idx_alert_rules_namespace_id ON alert_rules (namespace_id);
CREATE INDEX IF NOT EXISTS idx_alert_rules_template_id ON alert_rules (template_id);
CREATE INDEX IF NOT EXISTS idx_alert_rules_group_id ON alert_rules (group_id);
CREATE INDEX IF NOT EXISTS idx_check_instances_template_id ON check_instances (template_id);
CREATE INDEX IF NOT EXISTS idx_check_instances_target_id ON check_instances (target_id);
CREATE INDEX IF NOT EXISTS idx_bootstrap_tokens_namespace_id ON bootstrap_tokens (namespace_id);
CREATE INDEX IF NOT EXISTS idx_bootstrap_tokens_group_id ON bootstrap_tokens (group_id);

-- Lookups: scrape-config generation by target address and exporter type; expired-token cleanup.
CREATE INDEX IF NOT EXISTS idx_targets_address ON targets (address);
CREATE INDEX IF NOT EXISTS idx_exporters_type ON exporters (type);
CREATE INDEX IF NOT EXISTS idx_bootstrap_tokens_expires_at ON bootstrap_tokens (expires_at);

-- +goose Down

-- Reverse dependency order; no CASCADE, so an object someone else hung on these tables stops the
-- rollback loudly instead of vanishing with it.
DROP TABLE IF EXISTS bootstrap_tokens;
DROP TABLE IF EXISTS check_instances;
DROP TABLE IF EXISTS check_templates;
DROP TABLE IF EXISTS alert_rules;
DROP TABLE IF EXISTS alert_templates;
DROP TABLE IF EXISTS exporters;
DROP TABLE IF EXISTS target_groups;
DROP TABLE IF EXISTS targets;
DROP TABLE IF EXISTS groups;
DROP TABLE IF EXISTS namespaces;
