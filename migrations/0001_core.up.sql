-- 0001_core: the whole platform schema.
--
-- Tenancy: every tenant table carries company_id and is keyed (company_id, id);
-- every foreign key between tenant tables includes company_id, so the database
-- itself refuses a row that points at another company's row, and the schema can
-- be distributed by company_id (Citus) without changing the keys.
--
-- ON DELETE SET NULL on a composite key names only the nullable column
-- (PostgreSQL 15 column list): nulling company_id as well would violate NOT NULL.
--
-- The migration runner wraps this file in a transaction; no BEGIN/COMMIT here.

-- ---------------------------------------------------------------------------
-- companies: the tenants.
-- ---------------------------------------------------------------------------
CREATE TABLE companies (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text        NOT NULL,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT companies_slug_key UNIQUE (slug),
    CONSTRAINT companies_slug_check CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$')
);

-- ---------------------------------------------------------------------------
-- users: agents and admins of a company.
-- ---------------------------------------------------------------------------
CREATE TABLE users (
    company_id    bigint      NOT NULL,
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    email         text        NOT NULL,
    name          text        NOT NULL,
    role          text        NOT NULL DEFAULT 'agent',
    -- PHC string of an Argon2id hash; NULL means no password login (yet).
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, id),
    CONSTRAINT users_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT users_role_check CHECK (role IN ('admin', 'agent')),
    CONSTRAINT users_email_check CHECK (position('@' IN email) > 1),
    CONSTRAINT users_password_hash_check
        CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%')
);

-- Login is by email alone (no company in the form), so an address must map to
-- exactly one user across all companies, case-insensitively.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- ---------------------------------------------------------------------------
-- api_tokens: session and API bearer tokens. Only the SHA-256 of the token is
-- stored; a lookup is by hash alone (the token does not name its company).
-- ---------------------------------------------------------------------------
CREATE TABLE api_tokens (
    company_id   bigint      NOT NULL,
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    user_id      bigint      NOT NULL,
    token_hash   bytea       NOT NULL,
    name         text,
    kind         text        NOT NULL DEFAULT 'session',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (company_id, id),
    CONSTRAINT api_tokens_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT api_tokens_user_fk FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT api_tokens_token_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT api_tokens_kind_check CHECK (kind IN ('session', 'api'))
);

CREATE INDEX api_tokens_user_idx ON api_tokens (company_id, user_id);

-- ---------------------------------------------------------------------------
-- connections: WhatsApp Cloud API numbers of a company.
-- ---------------------------------------------------------------------------
CREATE TABLE connections (
    company_id           bigint      NOT NULL,
    id                   bigint      GENERATED ALWAYS AS IDENTITY,
    -- Global: the webhook URL /api/webhooks/meta/:slug names no company.
    slug                 text        NOT NULL,
    name                 text        NOT NULL,
    -- Meta's phone_number_id is globally unique; webhook payloads carry it.
    phone_number_id      text,
    waba_id              text,
    display_phone_number text,
    -- Secrets are stored encrypted by the application (format: src/auth/secrets.h).
    access_token_enc     bytea,
    app_secret_enc       bytea,
    verify_token         text,
    status               text        NOT NULL DEFAULT 'active',
    last_health_at       timestamptz,
    last_health_status   text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, id),
    CONSTRAINT connections_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT connections_slug_key UNIQUE (slug),
    CONSTRAINT connections_phone_number_id_key UNIQUE (phone_number_id),
    CONSTRAINT connections_slug_check CHECK (slug ~ '^[A-Za-z0-9_-]{1,64}$'),
    CONSTRAINT connections_status_check
        CHECK (status IN ('active', 'disabled', 'error'))
);

-- ---------------------------------------------------------------------------
-- contacts: the customers a company talks to.
-- ---------------------------------------------------------------------------
CREATE TABLE contacts (
    company_id   bigint      NOT NULL,
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    -- E.164 digits without the '+': what Meta sends as wa_id / "from".
    phone_number text        NOT NULL,
    wa_id        text,
    name         text,
    labels       text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, id),
    CONSTRAINT contacts_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT contacts_phone_number_check
        CHECK (phone_number ~ '^[1-9][0-9]{6,14}$'),
    -- One contact per number per company; also the plan's
    -- contacts (company_id, phone_number) index.
    CONSTRAINT contacts_phone_number_key UNIQUE (company_id, phone_number)
);

-- ---------------------------------------------------------------------------
-- conversations: one thread with a contact.
-- ---------------------------------------------------------------------------
CREATE TABLE conversations (
    company_id           bigint      NOT NULL,
    id                   bigint      GENERATED ALWAYS AS IDENTITY,
    contact_id           bigint      NOT NULL,
    connection_id        bigint,
    assignee_id          bigint,
    status               text        NOT NULL DEFAULT 'open',
    unread_count         integer     NOT NULL DEFAULT 0,
    -- Denormalised from the newest message so list pages never touch messages.
    last_message_at      timestamptz,
    last_message_preview text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, id),
    CONSTRAINT conversations_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    -- Erasing a contact erases its history.
    CONSTRAINT conversations_contact_fk FOREIGN KEY (company_id, contact_id)
        REFERENCES contacts (company_id, id) ON DELETE CASCADE,
    -- History outlives the number it came through, and the agent who had it.
    CONSTRAINT conversations_connection_fk FOREIGN KEY (company_id, connection_id)
        REFERENCES connections (company_id, id) ON DELETE SET NULL (connection_id),
    CONSTRAINT conversations_assignee_fk FOREIGN KEY (company_id, assignee_id)
        REFERENCES users (company_id, id) ON DELETE SET NULL (assignee_id),
    CONSTRAINT conversations_status_check
        CHECK (status IN ('open', 'pending', 'resolved')),
    CONSTRAINT conversations_unread_count_check CHECK (unread_count >= 0)
);

-- List filtered by status, newest first, keyset-paginated on (updated_at, id).
CREATE INDEX conversations_status_idx
    ON conversations (company_id, status, updated_at DESC, id DESC);
-- List of all statuses, newest first.
CREATE INDEX conversations_updated_idx
    ON conversations (company_id, updated_at DESC, id DESC);
-- "My conversations" and the assignee FK (SET NULL on user delete).
CREATE INDEX conversations_assignee_idx
    ON conversations (company_id, assignee_id, status);
-- Inbound webhook: find the contact's current conversation; contact FK.
CREATE INDEX conversations_contact_idx
    ON conversations (company_id, contact_id, updated_at DESC);
-- Connection FK (SET NULL on connection delete).
CREATE INDEX conversations_connection_idx
    ON conversations (company_id, connection_id)
    WHERE connection_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- messages
-- ---------------------------------------------------------------------------
CREATE TABLE messages (
    company_id      bigint      NOT NULL,
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    conversation_id bigint      NOT NULL,
    direction       text        NOT NULL,
    -- text, image, audio, video, document, location, interactive, template, ...
    type            text        NOT NULL DEFAULT 'text',
    body            text,
    payload         jsonb,
    -- NULL until Meta accepts an outbound message.
    wamid           text,
    status          text        NOT NULL,
    error_code      integer,
    error_title     text,
    sender_id       bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- When the current status was reached (Meta's timestamp), for forward-only
    -- status updates.
    status_at       timestamptz,
    PRIMARY KEY (company_id, id),
    CONSTRAINT messages_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT messages_conversation_fk FOREIGN KEY (company_id, conversation_id)
        REFERENCES conversations (company_id, id) ON DELETE CASCADE,
    CONSTRAINT messages_sender_fk FOREIGN KEY (company_id, sender_id)
        REFERENCES users (company_id, id) ON DELETE SET NULL (sender_id),
    CONSTRAINT messages_direction_check
        CHECK (direction IN ('inbound', 'outbound')),
    CONSTRAINT messages_status_check
        CHECK (status IN ('received', 'pending', 'sent', 'delivered', 'read', 'failed')),
    -- Meta retries webhooks: a wamid is stored once per company (NULLs allowed).
    CONSTRAINT messages_wamid_key UNIQUE (company_id, wamid)
);

-- A conversation's messages, newest first, keyset-paginated; conversation FK.
CREATE INDEX messages_conversation_idx
    ON messages (company_id, conversation_id, created_at DESC, id DESC);
-- Sender FK (SET NULL on user delete); most messages have no sender.
CREATE INDEX messages_sender_idx
    ON messages (company_id, sender_id)
    WHERE sender_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- notifications: per-user inbox.
-- ---------------------------------------------------------------------------
CREATE TABLE notifications (
    company_id bigint      NOT NULL,
    id         bigint      GENERATED ALWAYS AS IDENTITY,
    user_id    bigint      NOT NULL,
    type       text        NOT NULL,
    title      text        NOT NULL,
    body       text,
    data       jsonb,
    is_read    boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz,
    PRIMARY KEY (company_id, id),
    CONSTRAINT notifications_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT notifications_user_fk FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);

-- Unread (or read) notifications of a user, newest first, and unread counts;
-- also covers the user FK.
CREATE INDEX notifications_user_read_idx
    ON notifications (company_id, user_id, is_read, created_at DESC, id DESC);
-- All notifications of a user, newest first: with is_read in the middle the
-- index above cannot deliver this order without a sort.
CREATE INDEX notifications_user_created_idx
    ON notifications (company_id, user_id, created_at DESC, id DESC);

-- ---------------------------------------------------------------------------
-- campaigns: template broadcasts.
-- ---------------------------------------------------------------------------
CREATE TABLE campaigns (
    company_id        bigint      NOT NULL,
    id                bigint      GENERATED ALWAYS AS IDENTITY,
    -- A connection with campaigns cannot be deleted; disable it instead.
    connection_id     bigint      NOT NULL,
    name              text        NOT NULL,
    template_name     text        NOT NULL,
    template_language text        NOT NULL,
    template_params   jsonb       NOT NULL DEFAULT '[]',
    -- Who receives it (labels, contact ids, ...), resolved into
    -- campaign_recipients when the campaign starts.
    audience          jsonb       NOT NULL,
    status            text        NOT NULL DEFAULT 'draft',
    created_by        bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    completed_at      timestamptz,
    PRIMARY KEY (company_id, id),
    CONSTRAINT campaigns_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT campaigns_connection_fk FOREIGN KEY (company_id, connection_id)
        REFERENCES connections (company_id, id),
    CONSTRAINT campaigns_created_by_fk FOREIGN KEY (company_id, created_by)
        REFERENCES users (company_id, id) ON DELETE SET NULL (created_by),
    CONSTRAINT campaigns_status_check
        CHECK (status IN ('draft', 'running', 'paused', 'completed', 'cancelled'))
);

CREATE INDEX campaigns_created_idx
    ON campaigns (company_id, created_at DESC, id DESC);
CREATE INDEX campaigns_connection_idx
    ON campaigns (company_id, connection_id);
CREATE INDEX campaigns_created_by_idx
    ON campaigns (company_id, created_by)
    WHERE created_by IS NOT NULL;

-- ---------------------------------------------------------------------------
-- campaign_recipients: one row per contact per campaign; the sender's work list.
-- ---------------------------------------------------------------------------
CREATE TABLE campaign_recipients (
    company_id      bigint      NOT NULL,
    campaign_id     bigint      NOT NULL,
    contact_id      bigint      NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    wamid           text,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    error_code      integer,
    error_title     text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, campaign_id, contact_id),
    CONSTRAINT campaign_recipients_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT campaign_recipients_campaign_fk FOREIGN KEY (company_id, campaign_id)
        REFERENCES campaigns (company_id, id) ON DELETE CASCADE,
    CONSTRAINT campaign_recipients_contact_fk FOREIGN KEY (company_id, contact_id)
        REFERENCES contacts (company_id, id) ON DELETE CASCADE,
    CONSTRAINT campaign_recipients_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed')),
    CONSTRAINT campaign_recipients_attempts_check CHECK (attempts >= 0)
);

-- The sender picks the next batch of a campaign by status (and retry time).
CREATE INDEX campaign_recipients_status_idx
    ON campaign_recipients (company_id, campaign_id, status, next_attempt_at);
-- Contact FK (cascade on contact delete).
CREATE INDEX campaign_recipients_contact_idx
    ON campaign_recipients (company_id, contact_id);
-- Status webhooks find the recipient by wamid.
CREATE UNIQUE INDEX campaign_recipients_wamid_key
    ON campaign_recipients (company_id, wamid)
    WHERE wamid IS NOT NULL;

-- ---------------------------------------------------------------------------
-- jobs: the PostgreSQL job queue (claimed with FOR UPDATE SKIP LOCKED).
-- ---------------------------------------------------------------------------
CREATE TABLE jobs (
    company_id   bigint      NOT NULL,
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    queue        text        NOT NULL,
    -- Ordering key: jobs sharing (queue, key) run one at a time, in id order
    -- (e.g. one contact's webhooks are applied in arrival order).
    key          text,
    -- Deduplication key (e.g. a wamid): a second enqueue is a no-op.
    dedupe_key   text,
    -- Raw bytes (a webhook body exactly as signed by Meta).
    payload      bytea       NOT NULL,
    meta         jsonb,
    status       text        NOT NULL DEFAULT 'queued',
    attempts     integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL DEFAULT 3,
    run_at       timestamptz NOT NULL DEFAULT now(),
    -- Lease of a running job; past it, the job is stalled and is re-queued.
    locked_until timestamptz,
    locked_by    text,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (company_id, id),
    CONSTRAINT jobs_company_fk FOREIGN KEY (company_id)
        REFERENCES companies (id) ON DELETE CASCADE,
    -- 'failed' is the dead-letter state (attempts exhausted); retry re-queues.
    CONSTRAINT jobs_status_check
        CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    CONSTRAINT jobs_attempts_check CHECK (attempts >= 0),
    CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1)
)
-- A queue table is mostly dead tuples churning: vacuum it early.
WITH (autovacuum_vacuum_scale_factor = 0.01,
      autovacuum_analyze_scale_factor = 0.02);

-- Claiming: the oldest due job of a queue. Partial, so it stays small however
-- many completed jobs are kept.
CREATE INDEX jobs_claim_idx
    ON jobs (queue, run_at, id)
    WHERE status = 'queued';
-- Per-key ordering: a job may run only if it is the lowest live id of its key.
CREATE INDEX jobs_key_idx
    ON jobs (queue, key, id)
    WHERE status IN ('queued', 'running');
-- Deduplication within the retention window of completed jobs.
CREATE UNIQUE INDEX jobs_dedupe_key
    ON jobs (company_id, queue, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
-- Stalled-job recovery: running jobs whose lease expired.
CREATE INDEX jobs_stalled_idx
    ON jobs (locked_until)
    WHERE status = 'running';
-- Pruning of completed jobs.
CREATE INDEX jobs_prune_idx
    ON jobs (completed_at)
    WHERE status = 'completed';
