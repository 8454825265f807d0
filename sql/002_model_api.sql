-- modelreg schema, version 2: what the models API reads.
--
-- The model object of API.md is built here, once, in its field order:
-- the handlers send PostgreSQL's text as it comes (no parse, no second
-- serialisation, and float8's shortest exact output for score).

CREATE FUNCTION modelreg_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || ' UTC'
$$;

-- "url_prefix" names the store: 'fs:' or 's3://<bucket>/'
CREATE FUNCTION modelreg_model_json(m models, url_prefix text) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', m.id,
        'name', m.name,
        'target_device', m.target_device,
        'created_date', m.created_date,
        'last_updated_date', modelreg_ts(m.last_updated_at),
        'precision', json_build_array(m.precision),
        'size', m.size,
        'version', m.version,
        'format', m.format,
        'origin', m.origin,
        'file_url', url_prefix || m.storage_key,
        'project_id', m.project_id,
        'project_name', m.project_name,
        'category', m.category,
        'target_device_type', m.target_device_type,
        'score', m.score,
        'overview', m.overview,
        'optimization_capabilities', m.optimization_capabilities,
        'labels', m.labels,
        'architecture', m.architecture,
        'sha256', m.sha256,
        'file_name', m.file_name)
$$;

-- list order, and the keyset cursor in microseconds since the epoch
CREATE FUNCTION modelreg_us(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM t) * 1000000)::bigint
$$;

CREATE FUNCTION modelreg_from_us(us bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT timestamptz 'epoch' + us * interval '1 microsecond'
$$;

-- case-insensitive substring filters stay fast at 100k rows
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX models_name_trgm ON models USING gin (name gin_trgm_ops);
CREATE INDEX models_project_name_trgm ON models
    USING gin (project_name gin_trgm_ops);
CREATE INDEX models_category_trgm ON models USING gin (category gin_trgm_ops);
CREATE INDEX models_architecture_trgm ON models
    USING gin (architecture gin_trgm_ops);
CREATE INDEX models_version_idx ON models (version);
