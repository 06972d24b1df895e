/* stats.h: the "stats" role: tips, viewers and ended sessions into the analysis tables. */
#ifndef LIVEFLOW_STATS_H
#define LIVEFLOW_STATS_H

#include "consumer.h"

/*
 * Group liveflow.stats on live.reward, live.viewer and live.session:
 *  - reward: the stats_tip ledger and hourly_reward_stats (tips.h);
 *  - viewer.join / viewer.leave: the stats_viewer_event ledger (sessions.h);
 *  - session.end: stats_session, then live_statistics (sessions.h).
 * Other event types on these topics are logged and skipped. About once a second, tick()
 * brings dirty sessions' live_statistics up to date and runs the period's audience_profile
 * when it is due (profile.h). Replays change nothing: every write is keyed by the tip, the
 * viewer event or the session. A batch's tips go set-based (tips_apply_many(),
 * sessions_note_tips()), its other records one at a time, in the batch's transaction.
 */
extern const struct consumer_role stats_role;

#endif
