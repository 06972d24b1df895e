-- Profiles (POST /v1/events type profile, on live.interaction as profile.update), written by
-- the profiles role. profile_ts_ms is the app's ts of the newest profile applied: an older
-- copy (a retry that arrives after a newer profile) changes nothing, a copy of the same one
-- writes the same values again.
ALTER TABLE anchors
    ADD COLUMN IF NOT EXISTS age_band      VARCHAR(32) NULL,
    ADD COLUMN IF NOT EXISTS region        VARCHAR(64) NULL,
    ADD COLUMN IF NOT EXISTS profile_ts_ms BIGINT      NULL;

ALTER TABLE audiences
    ADD COLUMN IF NOT EXISTS age_band      VARCHAR(32) NULL,
    ADD COLUMN IF NOT EXISTS region        VARCHAR(64) NULL,
    ADD COLUMN IF NOT EXISTS audience_type ENUM('registered','guest') NULL,
    ADD COLUMN IF NOT EXISTS profile_ts_ms BIGINT      NULL;

-- Every tag a profile has named, created on first use.
CREATE TABLE IF NOT EXISTS tags (
    tag_id           INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name             VARCHAR(32)  NOT NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY tags_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A person's tags: the set the newest profile that named tags gave.
CREATE TABLE IF NOT EXISTS anchor_tags (
    anchor_id        VARCHAR(64)  NOT NULL,
    tag_id           INT UNSIGNED NOT NULL,
    PRIMARY KEY (anchor_id, tag_id),
    KEY anchor_tags_tag (tag_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS audience_tags (
    audience_id      VARCHAR(64)  NOT NULL,
    tag_id           INT UNSIGNED NOT NULL,
    PRIMARY KEY (audience_id, tag_id),
    KEY audience_tags_tag (tag_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
