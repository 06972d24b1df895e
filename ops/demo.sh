#!/bin/sh
# ops/demo.sh: make demo. Starts the local stack (make run), plays a simulated evening with
# liveflow-sim --verify (DEMO_DURATION seconds, 300, at DEMO_RATE requests a second, 200), then
# says where to look. The stack keeps running afterwards (make stop stops it).
#
#   sh ops/demo.sh [BUILD_DIR]
#
# Exits with liveflow-sim's code: 0 the evening verified, 1 a difference, 2 no stack.
set -u

LF_PROG=demo
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ops/lib.sh"

BUILD=${1:-build}
DURATION=${DEMO_DURATION:-300}
RATE=${DEMO_RATE:-200}
RUN=${LIVEFLOW_STACK_DIR:-$ROOT/.run}

# tag_affinity every minute, so that the evening shows in it before the demo ends.
export LIVEFLOW_AFFINITY_INTERVAL_S=${LIVEFLOW_AFFINITY_INTERVAL_S:-60}
sh "$ROOT/ops/stack.sh" start "$BUILD" || exit 2
. "$RUN/env"
note "playing a $DURATION s evening at $RATE requests/s (liveflow-sim --verify)"
"$BUILD/bin/liveflow-sim" --duration "$DURATION" --rate "$RATE" --verify
rc=$?

MYSQL_HOSTPORT=${LIVEFLOW_MYSQL_URL#*@}
MYSQL_HOSTPORT=${MYSQL_HOSTPORT%%/*}
MYSQL_USERPASS=${LIVEFLOW_MYSQL_URL#mysql://}
MYSQL_USERPASS=${MYSQL_USERPASS%%@*}
PROM=${LIVEFLOW_STACK_PROMETHEUS_PORT:-9190}
cat <<HINTS

Where to look (the stack keeps running; make stop stops it):
  Prometheus   http://127.0.0.1:$PROM/consoles/liveflow.html   (targets: /targets, alerts: /alerts)
  Grafana      import ops/grafana/dashboards/*.json, data source http://127.0.0.1:$PROM
  liveflow-ctl build/bin/liveflow-ctl stats --by anchor_gender,audience_gender
               build/bin/liveflow-ctl stats --by anchor_tag --where audience_type=guest
  MySQL        mysql -h ${MYSQL_HOSTPORT%:*} -P ${MYSQL_HOSTPORT#*:} -u ${MYSQL_USERPASS%%:*} -p${MYSQL_USERPASS#*:} liveflow
    SELECT anchor_id, total_amount, withdrawn_amount, available_amount FROM settlement ORDER BY total_amount DESC LIMIT 10;
    SELECT anchor_gender, audience_gender, SUM(amount_sum), SUM(reward_count) FROM hourly_reward_stats GROUP BY 1, 2;
    SELECT session_id, stream_id, duration_s, gift_amount, unique_viewers, peak_online, chats, likes FROM live_statistics ORDER BY gift_amount DESC LIMIT 10;
    SELECT rank_no, anchor_tag, audience_tag, ROUND(score, 3) FROM tag_affinity ORDER BY rank_no LIMIT 10;
HINTS
exit $rc
