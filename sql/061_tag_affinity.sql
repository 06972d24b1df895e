-- Tag affinity (liveflow-stats, every LIVEFLOW_STATS_AFFINITY_INTERVAL_S): computed into
-- tag_affinity_stage, then swapped in with RENAME TABLE, so a run that dies keeps the
-- previous table. See the README for the formula.
CREATE TABLE IF NOT EXISTS tag_affinity (
    anchor_tag       VARCHAR(32)  NOT NULL,
    audience_tag     VARCHAR(32)  NOT NULL,
    tip_amount       BIGINT       NOT NULL,
    watch_s          BIGINT       NOT NULL,
    score            DOUBLE       NOT NULL,
    rank_no          INT UNSIGNED NOT NULL,
    computed_at      DATETIME(3)  NOT NULL,
    PRIMARY KEY (anchor_tag, audience_tag),
    KEY tag_affinity_rank (rank_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS stats_affinity_run (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    interval_s       BIGINT       NOT NULL,
    period           BIGINT       NOT NULL,
    instance         VARCHAR(128) NOT NULL,
    pairs            BIGINT       NOT NULL,
    started_at       DATETIME(3)  NOT NULL,
    finished_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY stats_affinity_run_once (interval_s, period)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
