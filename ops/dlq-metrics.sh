#!/bin/sh
# ops/dlq-metrics.sh: what the dead-letter topics hold, for Prometheus: runs
# `liveflow-ctl dlq list --json` (or COMMAND, which must print the same document) and writes
# DIR/liveflow_dlq.prom in the text format node_exporter's textfile collector reads (`make run`
# serves the same directory to its Prometheus). Per .dlq topic: records by error class
# (transient, permanent; both always present), by consumer group, those past the replay
# progress, and the oldest record's time. Exits with the command's status.
#
#   sh ops/dlq-metrics.sh DIR [COMMAND [ARGS...]]
#
# Cron (every 5 minutes, beside the replay job):
#   */5 * * * *  liveflow sh /usr/local/share/liveflow/dlq-metrics.sh /var/lib/prometheus/node-exporter
set -u

note() {
        printf 'dlq-metrics: %s\n' "$*" >&2
}

[ $# -ge 1 ] || { echo "usage: sh $0 DIR [COMMAND [ARGS...]]" >&2; exit 2; }
DIR=$1
shift
[ -d "$DIR" ] && [ -w "$DIR" ] || { note "$DIR is not a writable directory"; exit 2; }
[ $# -gt 0 ] || set -- liveflow-ctl dlq list --json

tmp="$DIR/.liveflow_dlq.prom.$$"
json="$DIR/.liveflow_dlq.json.$$"
trap 'rm -f "$tmp" "$json"' EXIT
"$@" >"$json"
rc=$?
python3 - "$json" "$rc" "$(date +%s)" >"$tmp" <<'EOF' || { note "cannot convert the output of the list"; exit 2; }
import json, sys

path, rc, now = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def esc(v):
    return str(v).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")

def family(name, help_text, samples):
    print(f"# HELP {name} {help_text}")
    print(f"# TYPE {name} gauge")
    for labels, value in samples:
        text = ",".join(f'{k}="{esc(v)}"' for k, v in labels.items())
        print(f"{name}{{{text}}} {value}" if text else f"{name} {value}")

try:
    doc = json.load(open(path)) if rc in (0, 1) else {"topics": []}
except ValueError:
    doc, rc = {"topics": []}, 2
topics = doc.get("topics", [])
family("liveflow_dlq_list_last_run_timestamp_seconds", "When the DLQ was last listed (Unix time).", [({}, now)])
family("liveflow_dlq_list_exit_code", "Exit status of the last listing: 0 done, 1 something left, 2 could not list.", [({}, rc)])
family("liveflow_dlq_records", "Records in the dead-letter topic, by error class.",
       [({"topic": t["topic"], "class": c}, t.get("by_class", {}).get(c, 0))
        for t in topics for c in ("transient", "permanent")])
family("liveflow_dlq_records_by_group", "Records in the dead-letter topic, by the consumer group that wrote them.",
       [({"topic": t["topic"], "group": g}, n) for t in topics for g, n in sorted(t.get("by_group", {}).items())])
family("liveflow_dlq_pending_records", "Records past the replay progress (not yet replayed).",
       [({"topic": t["topic"]}, t.get("pending", 0)) for t in topics])
family("liveflow_dlq_oldest_record_timestamp_seconds", "When the oldest record still in the topic was dead-lettered.",
       [({"topic": t["topic"]}, t["oldest_ms"] / 1000) for t in topics if t.get("oldest_ms") is not None])
EOF
chmod 644 "$tmp" && mv "$tmp" "$DIR/liveflow_dlq.prom" || { note "cannot write $DIR"; exit 2; }
exit "$rc"
