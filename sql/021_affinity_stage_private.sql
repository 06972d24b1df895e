-- A tag affinity run stages into a temporary table of its own connection and copies it into
-- tag_affinity in one transaction (stats-worker/affinity.c), so that runs of different periods
-- may overlap without one emptying or swapping in another's stage; the shared stage and the
-- RENAME TABLE swap's leftover are no longer used.
DROP TABLE IF EXISTS tag_affinity_stage;
DROP TABLE IF EXISTS tag_affinity_old;
