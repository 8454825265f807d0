-- modelreg schema, version 5: aliases, a name for "the model to deploy"
-- (PUT /aliases/{name}/{alias}).
--
-- The rules hold in the database, whatever runs at the same time:
--   - an alias names a model of its own name: (model_id, name) references
--     models (id, name), so a model cannot be renamed while an alias of
--     its name points at it (ON UPDATE RESTRICT), nor deleted (ON DELETE
--     RESTRICT);
--   - the BEFORE trigger below says which aliases stand in the way, read
--     once the model's row is locked: a concurrent alias set either
--     committed first (its row is seen: 23503) or waits for the delete
--     (then its reference finds no model: it fails).

ALTER TABLE models ADD CONSTRAINT models_id_name_key UNIQUE (id, name);

CREATE TABLE aliases (
    name        text NOT NULL,
    alias       text NOT NULL
                CHECK (alias ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    model_id    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (name, alias),
    CONSTRAINT aliases_model_fkey FOREIGN KEY (model_id, name)
        REFERENCES models (id, name) ON UPDATE RESTRICT ON DELETE RESTRICT
);

-- the RESTRICT checks and the trigger look aliases up by model
CREATE INDEX aliases_model_idx ON aliases (model_id);

ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check
    CHECK (action IN ('model.create', 'model.update', 'model.delete',
                      'model.download', 'geti.import', 'geti.sync',
                      'alias.set', 'alias.delete'));


-- Deleting or renaming a model that aliases point at: 23503 with the
-- aliases, sorted, as the error's DETAIL (the module's 409 names them).
-- A BEFORE ROW trigger runs once the row is locked, and a PL/pgSQL
-- statement reads with a new snapshot: aliases committed while this
-- statement waited for the lock are seen.

CREATE FUNCTION modelreg_models_referenced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    refs text;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.name = OLD.name THEN
        RETURN NEW;
    END IF;

    SELECT string_agg(alias, ', ' ORDER BY alias COLLATE "C") INTO refs
    FROM aliases WHERE model_id = OLD.id;

    IF refs IS NOT NULL THEN
        RAISE EXCEPTION 'model % is referenced by aliases', OLD.id
            USING ERRCODE = 'foreign_key_violation', DETAIL = refs,
                  CONSTRAINT = 'aliases_model_fkey';
    END IF;

    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE TRIGGER modelreg_models_referenced
    BEFORE UPDATE OF name OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION modelreg_models_referenced();


-- The read cache (sql/004) also holds aliases, under "<alias>@<name>"
-- (no model id has an "@"): a changed or deleted alias is announced on
-- the same channel when its transaction commits, a TRUNCATE as '*'.

CREATE FUNCTION modelreg_aliases_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('modelreg_models', '*');
    ELSE
        PERFORM pg_notify('modelreg_models', OLD.alias || '@' || OLD.name);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER modelreg_aliases_notify
    AFTER UPDATE OR DELETE ON aliases
    FOR EACH ROW EXECUTE FUNCTION modelreg_aliases_notify();

CREATE TRIGGER modelreg_aliases_notify_truncate
    AFTER TRUNCATE ON aliases
    FOR EACH STATEMENT EXECUTE FUNCTION modelreg_aliases_notify();


-- PUT /aliases/{name}/{alias} once the model is locked and its name
-- checked: the upsert and its alias.set event, whose "old" model_id is
-- the one this set replaced.  A statement's snapshot is not enough for
-- that (a set committing after it was taken would not be named), so the
-- alias' row is locked first, by statements that each read the newest
-- committed data (READ COMMITTED, PL/pgSQL): the row locked, or none and
-- an INSERT that did insert.  An INSERT that met a concurrent one looks
-- again.  Concurrent sets of one alias thus form one chain, old -> new,
-- in the order of their audit ids.  A name has at most 1000 aliases
-- (54000: the module's 422).

-- Locks only the registry's role can take: rows of a table of its own.
-- (Any role may take an advisory lock, and one that held the registry's
-- keys would stall its writers.)  0-255: names, by hash, for counting
-- their aliases; 256: the sync tokens' sequence.

CREATE TABLE modelreg_locks (id integer PRIMARY KEY);
INSERT INTO modelreg_locks SELECT generate_series(0, 256);
REVOKE ALL ON TABLE modelreg_locks FROM PUBLIC;

CREATE FUNCTION modelreg_alias_set(p_name text, p_alias text,
                                   p_model_id text, p_actor text,
                                   p_request_id text, p_remote_addr text)
RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    prev  text;
    s     aliases;
BEGIN
    LOOP
        SELECT model_id INTO prev FROM aliases
        WHERE name = p_name AND alias = p_alias FOR UPDATE;

        IF FOUND THEN
            UPDATE aliases SET model_id = p_model_id,
                               updated_at = clock_timestamp()
            WHERE name = p_name AND alias = p_alias
            RETURNING * INTO s;
            EXIT;
        END IF;

        -- a new alias: at most 1000 a name, counted one set at a time
        PERFORM 1 FROM modelreg_locks WHERE id = hashtext(p_name) & 255
        FOR UPDATE;

        IF (SELECT count(*) FROM aliases WHERE name = p_name) >= 1000 THEN
            RAISE EXCEPTION 'too many aliases of %', p_name
                USING ERRCODE = 'program_limit_exceeded';
        END IF;

        INSERT INTO aliases (name, alias, model_id)
        VALUES (p_name, p_alias, p_model_id)
        ON CONFLICT (name, alias) DO NOTHING
        RETURNING * INTO s;

        EXIT WHEN FOUND;
    END LOOP;

    INSERT INTO audit_events (action, model_id, actor, request_id,
                              remote_addr, status, details)
    VALUES ('alias.set', s.model_id, p_actor, p_request_id, p_remote_addr,
            200, jsonb_build_object('name', s.name, 'alias', s.alias,
                     'model_id', jsonb_build_object('old', prev,
                                                    'new', s.model_id)));

    RETURN json_build_object('name', s.name, 'alias', s.alias,
                             'model_id', s.model_id,
                             'updated_date', modelreg_ts(s.updated_at));
END
$$;


-- Strict alias moves across nodes (README "Across nodes: leases").  Each
-- node's cache listener heartbeats here; an alias read is served from a
-- node's cache only under its lease, and a writer, once its change has
-- committed, waits until every node has applied it or lost its lease.
-- Logged, not unlogged: a crash that emptied the table would let a
-- writer skip a node still serving under its lease.  After a failover
-- the rows are as the standby had them (with asynchronous replication a
-- lease written last may be missing: README "Across nodes: leases").
--
-- Any role may NOTIFY on the channel and LISTEN to it: a sync token is
-- acknowledged only with the random nonce it was sent with, kept in a
-- table only the registry's role reads.

CREATE TABLE modelreg_cache_nodes (
    zone         text NOT NULL,           -- the node: its cache zone's id
    node         integer NOT NULL,        -- the listener's backend pid
    listener     bigint NOT NULL,         -- its worker's, in the zone
    lease_until  timestamptz NOT NULL,
    acked        bigint NOT NULL,         -- the highest sync token applied
    PRIMARY KEY (zone, node)
);

CREATE SEQUENCE modelreg_cache_sync_seq;

CREATE TABLE modelreg_cache_sync_tokens (
    token  bigint PRIMARY KEY,
    nonce  text NOT NULL,
    taken  timestamptz NOT NULL DEFAULT clock_timestamp()
);

REVOKE ALL ON TABLE modelreg_cache_nodes, modelreg_cache_sync_tokens
    FROM PUBLIC;
REVOKE ALL ON SEQUENCE modelreg_cache_sync_seq FROM PUBLIC;

-- A listener's heartbeat.  "p_listener" numbers the worker processes of
-- its zone that listened (a reload's new worker 0 has a higher one): its
-- row replaces its node's rows of lower numbers and its own older
-- connections' (the node's cache is the newest listener's), and an older
-- listener is told so (-1) and stops.  "Fresh" when it holds no lease, so that
-- it ignores all it cached before: it is then as good as every token taken.
-- Otherwise its ack is the highest of "p_tokens" whose nonce matches, if
-- higher than the row's (tokens arrive in commit order, not in the order
-- they were taken; every ack there was checked so, or fresh).  Returns the
-- ack recorded.

CREATE FUNCTION modelreg_cache_beat(p_zone text, p_listener bigint,
                                    p_tokens bigint[], p_nonces text[],
                                    p_lease_ms integer, p_fresh boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    a  bigint;
BEGIN
    PERFORM 1 FROM modelreg_cache_nodes
    WHERE zone = p_zone AND listener > p_listener;

    IF FOUND THEN
        RETURN -1;
    END IF;

    DELETE FROM modelreg_cache_nodes
    WHERE zone = p_zone
      AND (listener < p_listener
           OR (listener = p_listener AND node <> pg_backend_pid()));

    IF p_fresh THEN
        SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
        INTO a FROM modelreg_cache_sync_seq;

        DELETE FROM modelreg_cache_nodes
        WHERE lease_until < now() - interval '1 hour';
    ELSE
        SELECT max(s.token) INTO a
        FROM unnest(p_tokens, p_nonces) AS u(token, nonce)
        JOIN modelreg_cache_sync_tokens s
          ON s.token = u.token AND s.nonce = u.nonce;
    END IF;

    INSERT INTO modelreg_cache_nodes AS n (zone, node, listener,
                                           lease_until, acked)
    VALUES (p_zone, pg_backend_pid(), p_listener,
            now() + p_lease_ms::float8 * interval '1 ms', coalesce(a, 0))
    ON CONFLICT (zone, node) DO UPDATE
    SET listener = EXCLUDED.listener,
        lease_until = EXCLUDED.lease_until,
        acked = CASE WHEN p_fresh THEN EXCLUDED.acked
                     ELSE greatest(n.acked, a) END
    RETURNING acked INTO a;

    RETURN a;
END
$$;

-- After a change committed, in a transaction of its own: its NOTIFY is
-- queued behind the change's, so a listener that reads "!<token>:<nonce>"
-- has applied the change.  Tokens are taken in real time order (a listener
-- acks the highest it read), above every token recorded and every ack: a
-- sequence set back (setval, a restore) does not make old acks count.

CREATE FUNCTION modelreg_cache_sync_request() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    t      bigint := nextval('modelreg_cache_sync_seq'::regclass);
    top    bigint;
    nonce  text := replace(gen_random_uuid()::text, '-', '');
BEGIN
    SELECT greatest(max(token), (SELECT max(acked)
                                 FROM modelreg_cache_nodes))
    INTO top FROM modelreg_cache_sync_tokens;

    IF t <= top THEN
        -- rare: one writer at a time moves the sequence, forward only
        PERFORM 1 FROM modelreg_locks WHERE id = 256 FOR UPDATE;

        IF (SELECT last_value FROM modelreg_cache_sync_seq) < top THEN
            PERFORM setval('modelreg_cache_sync_seq'::regclass, top);
        END IF;

        t := nextval('modelreg_cache_sync_seq'::regclass);
    END IF;

    INSERT INTO modelreg_cache_sync_tokens (token, nonce) VALUES (t, nonce);

    -- a minute is far past any wait; the newest row stays (it is "top")
    DELETE FROM modelreg_cache_sync_tokens
    WHERE token < t AND taken < clock_timestamp() - interval '1 minute';

    PERFORM pg_notify('modelreg_models', '!' || t::text || ':' || nonce);
    RETURN t;
END
$$;

-- One check of a writer's wait: how many nodes neither acked "p_token"
-- nor let their lease end.  The writer polls it from nginx (1 ms first,
-- doubling up to 50 ms, each a new statement that reads the newest
-- commits), holding no connection between checks.  Leases are compared
-- with this server's clock, as they were written.

CREATE FUNCTION modelreg_cache_late(p_token bigint) RETURNS integer
LANGUAGE sql AS $$
    SELECT count(*)::integer FROM modelreg_cache_nodes
    WHERE acked < p_token AND lease_until > clock_timestamp()
$$;

REVOKE ALL ON FUNCTION modelreg_cache_beat(text, bigint, bigint[], text[],
                                           integer, boolean),
                       modelreg_cache_sync_request(),
                       modelreg_cache_late(bigint)
    FROM PUBLIC;
