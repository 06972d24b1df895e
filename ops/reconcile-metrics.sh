#!/bin/sh
# ops/reconcile-metrics.sh: runs a reconciliation (any command that exits 0 when the ledgers
# agree, 1 when they differ, 2 when it could not check) and records its result for Prometheus
# in DIR/liveflow_reconcile.prom, in the text format node_exporter's textfile collector reads
# (`make run` serves the same directory to its Prometheus). Exits with the command's status,
# so cron still sees it.
#
#   sh ops/reconcile-metrics.sh DIR [COMMAND [ARGS...]]
#      (COMMAND defaults to `liveflow-settlement reconcile`)
#
# The cron line (README, "Operating liveflow"):
#   17 * * * *  liveflow sh /usr/local/share/liveflow/reconcile-metrics.sh \
#                   /var/lib/prometheus/node-exporter liveflow-settlement reconcile
set -u

# Self-contained (no ops/lib.sh), so it can be installed alone.
note() {
        printf 'reconcile-metrics: %s\n' "$*" >&2
}

now_ms() {
        date +%s%3N
}

[ $# -ge 1 ] || { echo "usage: sh $0 DIR [COMMAND [ARGS...]]" >&2; exit 2; }
DIR=$1
shift
[ -d "$DIR" ] && [ -w "$DIR" ] || { note "$DIR is not a writable directory"; exit 2; }
[ $# -gt 0 ] || set -- liveflow-settlement reconcile

started=$(now_ms)
"$@"
rc=$?
took_ms=$(($(now_ms) - started))
case "$rc" in
0) agree=1 ;;
*) agree=0 ;;
esac

# Written beside and renamed, so a scrape never reads half a file.
tmp="$DIR/.liveflow_reconcile.prom.$$"
cat >"$tmp" <<EOF || { note "cannot write $tmp"; exit 2; }
# HELP liveflow_reconcile_last_run_timestamp_seconds When the last reconciliation finished (Unix time).
# TYPE liveflow_reconcile_last_run_timestamp_seconds gauge
liveflow_reconcile_last_run_timestamp_seconds $(date +%s)
# HELP liveflow_reconcile_exit_code Exit status of the last reconciliation: 0 the ledgers agree, 1 they differ, 2 it could not check.
# TYPE liveflow_reconcile_exit_code gauge
liveflow_reconcile_exit_code $rc
# HELP liveflow_reconcile_agree 1 when the last reconciliation found every ledger in agreement.
# TYPE liveflow_reconcile_agree gauge
liveflow_reconcile_agree $agree
# HELP liveflow_reconcile_duration_seconds How long the last reconciliation took.
# TYPE liveflow_reconcile_duration_seconds gauge
liveflow_reconcile_duration_seconds $((took_ms / 1000)).$(printf '%03d' $((took_ms % 1000)))
EOF
chmod 644 "$tmp" && mv "$tmp" "$DIR/liveflow_reconcile.prom" || { note "cannot write $DIR"; exit 2; }
exit "$rc"
