-- 015_revenue_share_history: every change of revenue_share made through `liveflow-ctl share set`,
-- with who made it and why. Re-runnable (IF NOT EXISTS), as the migration tool asks of every file.

-- One row per change, written in the transaction that changes revenue_share. previous_bp is the
-- ratio that was in force at effective_at before the change (NULL: none, the worker's default),
-- replaced_bp the ratio of a row at the same effective_at that the change replaced (NULL: a new row).
CREATE TABLE IF NOT EXISTS revenue_share_history (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    anchor_id        VARCHAR(64)  NOT NULL,
    effective_at     DATETIME(3)  NOT NULL,
    ratio_bp         INT UNSIGNED NOT NULL,
    previous_bp      INT UNSIGNED NULL,
    replaced_bp      INT UNSIGNED NULL,
    is_backdated     TINYINT      NOT NULL DEFAULT 0 COMMENT '1: effective_at was before the change',
    changed_by       VARCHAR(160) NOT NULL COMMENT 'user@host of the operator',
    reason           VARCHAR(255) NULL,
    changed_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY revenue_share_history_anchor (anchor_id, changed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
