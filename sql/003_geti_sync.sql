-- modelreg schema, version 3: the Geti sync.

-- one row per run, whoever ran it
CREATE TABLE geti_sync_runs (
    id        bigserial PRIMARY KEY,
    node      text NOT NULL,
    started   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished  timestamptz,
    outcome   text NOT NULL DEFAULT 'running'
              CHECK (outcome IN ('running', 'ok', 'partial', 'failed')),
    seen      integer NOT NULL DEFAULT 0,
    imported  integer NOT NULL DEFAULT 0,
    failed    integer NOT NULL DEFAULT 0,
    error     text
);

-- one runner in the cluster at a time: a lease, not a session lock (the
-- registry's connections are a pool, none is held across a run)
CREATE TABLE geti_sync_lease (
    id        integer PRIMARY KEY CHECK (id = 1),
    holder    text,
    until     timestamptz NOT NULL DEFAULT 'epoch',
    run_id    bigint,
    next_run  timestamptz
);

INSERT INTO geti_sync_lease (id) VALUES (1);

-- models deleted after an import: the sync does not bring them back
CREATE TABLE geti_tombstones (
    model_id    text PRIMARY KEY,
    deleted_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- the audit action of a sync run
ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check
    CHECK (action IN ('model.create', 'model.update', 'model.delete',
                      'model.download', 'geti.import', 'geti.sync'));

-- the status of GET /geti/sync, in API.md's shape
CREATE FUNCTION modelreg_sync_json(interval_s integer) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'configured', true,
        'interval_s', interval_s,
        'running', l.holder IS NOT NULL AND l.until > now(),
        'next_run', modelreg_ts(l.next_run),
        'last_run', (SELECT json_build_object(
                         'id', r.id,
                         'started', modelreg_ts(r.started),
                         'finished', modelreg_ts(r.finished),
                         'outcome', r.outcome,
                         'seen', r.seen,
                         'imported', r.imported,
                         'failed', r.failed,
                         'error', r.error)
                     FROM geti_sync_runs r ORDER BY r.id DESC LIMIT 1))
    FROM geti_sync_lease l WHERE l.id = 1
$$;
