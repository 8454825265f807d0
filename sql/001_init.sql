-- modelreg schema, version 1: models, their audit trail, the storage
-- clean-up queue.  Applied by sql/migrate inside one transaction.

CREATE TABLE models (
    id                        text PRIMARY KEY
                              CHECK (id ~ '^[A-Za-z0-9_-]{16,128}$'),
    name                      text NOT NULL
                              CHECK (octet_length(name) BETWEEN 1 AND 256),
    version                   text NOT NULL
                              CHECK (octet_length(version) BETWEEN 1 AND 128),
    target_device             text NOT NULL DEFAULT 'CPU',
    -- the client's value verbatim, else the registration time (API.md)
    created_date              text NOT NULL,
    registered_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_updated_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    precision                 text NOT NULL DEFAULT 'fp32'
                              CHECK (precision IN ('fp32', 'fp16', 'int8',
                                                   'int4')),
    size                      bigint NOT NULL CHECK (size >= 0),
    format                    text,
    origin                    text,
    project_id                text,
    project_name              text,
    category                  text,
    target_device_type        text,
    score                     double precision NOT NULL DEFAULT 0
                              CHECK (score = score
                                     AND score <> 'Infinity'::float8
                                     AND score <> '-Infinity'::float8),
    overview                  jsonb NOT NULL DEFAULT '{}'
                              CHECK (jsonb_typeof(overview) = 'object'),
    optimization_capabilities jsonb NOT NULL DEFAULT '{}'
                              CHECK (jsonb_typeof(optimization_capabilities)
                                     = 'object'),
    labels                    jsonb NOT NULL DEFAULT '[]'
                              CHECK (jsonb_typeof(labels) = 'array'),
    architecture              text,
    sha256                    text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    file_name                 text NOT NULL
                              CHECK (octet_length(file_name) BETWEEN 1 AND 255),
    storage_key               text NOT NULL UNIQUE,

    -- the duplicate rule of API.md, enforced under concurrency
    CONSTRAINT models_identity_key
        UNIQUE NULLS NOT DISTINCT (name, version, precision, project_id,
                                   project_name)
);

-- list order and keyset pagination
CREATE INDEX models_registered_idx ON models (registered_at, id);


CREATE TABLE audit_events (
    id           bigserial PRIMARY KEY,
    time         timestamptz NOT NULL DEFAULT clock_timestamp(),
    action       text NOT NULL
                 CHECK (action IN ('model.create', 'model.update',
                                   'model.delete', 'model.download',
                                   'geti.import', 'geti.sync')),
    model_id     text,
    actor        text NOT NULL DEFAULT '-',
    request_id   text,
    remote_addr  text,
    status       integer,
    details      jsonb NOT NULL DEFAULT '{}'
                 CHECK (jsonb_typeof(details) = 'object')
);

CREATE INDEX audit_events_model_idx ON audit_events (model_id, id);
CREATE INDEX audit_events_action_idx ON audit_events (action, id);


-- objects whose deletion failed: retried with back-off by a worker timer
CREATE TABLE storage_gc (
    id               bigserial PRIMARY KEY,
    storage_key      text NOT NULL UNIQUE,
    reason           text NOT NULL,
    enqueued_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_error       text
);

CREATE INDEX storage_gc_next_idx ON storage_gc (next_attempt_at);
