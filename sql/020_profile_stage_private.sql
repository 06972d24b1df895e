-- A profiling run stages into a temporary table of its own connection (lib/profile_run.c), so
-- that runs of different periods may overlap without one emptying or swapping in another's
-- stage; the shared stage of 006 is no longer used.
DROP TABLE IF EXISTS stats_profile_stage;
