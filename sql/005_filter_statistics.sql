-- modelreg schema, version 5: steadier plans for the substring filters.
--
-- GET /models?name=<substring> sorts by (registered_at, id) with LIMIT.
-- PostgreSQL estimates an ILIKE '%x%' from the column's histogram: with
-- the default statistics target (100 buckets) one sampled match makes a
-- rare pattern look like 1% of the table, and the planner then walks the
-- ordering index instead of the trigram index.  Measured at 100k models:
-- 2 of 36 (pattern, ANALYZE) pairs planned that way and took 70-114 ms
-- instead of 2-3 ms; with 1000 buckets, 0 of 120.
ALTER TABLE models
    ALTER COLUMN name SET STATISTICS 1000,
    ALTER COLUMN project_name SET STATISTICS 1000,
    ALTER COLUMN category SET STATISTICS 1000,
    ALTER COLUMN architecture SET STATISTICS 1000;

ANALYZE models;
