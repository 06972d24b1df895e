#!/usr/bin/env python3
"""ops/grafana/generate.py: writes the Grafana dashboards of ops/grafana/dashboards/ (one JSON
file per dashboard, provisioning-ready). Edit the panels here, then run
    python3 ops/grafana/generate.py ops/grafana/dashboards
`--check DIR` checks the dashboards in DIR are well formed (unique uids and panel ids, panels
inside the 24-column grid without overlapping, every query on the datasource variable).
make test checks that the JSON files are what this writes, runs --check, and runs every panel
query against a Prometheus that scraped a running stack."""
import json
import os
import sys



def check(directory):
    """Problems of the dashboards in directory, one string each."""
    problems, uids = [], set()
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        d = json.load(open(os.path.join(directory, name)))
        where = name
        if not d.get("uid") or d["uid"] in uids:
            problems.append(f"{where}: missing or repeated uid")
        uids.add(d.get("uid"))
        if not any(v.get("type") == "datasource" and v.get("name") == "datasource"
                   for v in d.get("templating", {}).get("list", [])):
            problems.append(f"{where}: no datasource variable")
        ids, cells = set(), set()
        for p in d.get("panels", []):
            if p.get("id") in ids:
                problems.append(f"{where}: panel id {p.get('id')} repeated")
            ids.add(p.get("id"))
            g = p.get("gridPos", {})
            if g.get("x", 0) + g.get("w", 0) > 24 or g.get("w", 0) <= 0 or g.get("h", 0) <= 0:
                problems.append(f"{where}: {p.get('title')!r} outside the grid")
            for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
                for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                    if (x, y) in cells:
                        problems.append(f"{where}: {p.get('title')!r} overlaps another panel")
                        break
                    cells.add((x, y))
                else:
                    continue
                break
            if p.get("type") == "row":
                continue
            if not p.get("targets"):
                problems.append(f"{where}: {p.get('title')!r} has no query")
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("uid") != "${datasource}" or not t.get("expr"):
                    problems.append(f"{where}: {p.get('title')!r} query {t.get('refId')} not on ${{datasource}}")
    return problems


if len(sys.argv) == 3 and sys.argv[1] == "--check":
    found = check(sys.argv[2])
    for line in found:
        print(line, file=sys.stderr)
    sys.exit(1 if found else 0)
if len(sys.argv) != 2:
    print("usage: generate.py OUT_DIR | --check DIR", file=sys.stderr)
    sys.exit(2)
OUT = sys.argv[1]
DS = {"type": "prometheus", "uid": "${datasource}"}

def ds_var():
    return {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "options": [], "regex": ""}

def role_var():
    return {"name": "role", "label": "role", "type": "query", "datasource": DS,
            "query": {"query": "label_values(liveflow_consumer_assigned_partitions, role)", "refId": "role"},
            "definition": "label_values(liveflow_consumer_assigned_partitions, role)",
            "includeAll": True, "multi": True, "allValue": ".+", "current": {"text": "All", "value": "$__all"},
            "refresh": 2, "sort": 1, "hide": 0, "options": []}

class Dash:
    def __init__(s, uid, title, desc, vars=()):
        s.uid, s.title, s.desc, s.vars = uid, title, desc, list(vars)
        s.panels, s.x, s.y, s.rowh, s.id = [], 0, 0, 0, 0
    def row(s, title):
        if s.x: s.y += s.rowh; s.x = 0; s.rowh = 0
        s.id += 1
        s.panels.append({"id": s.id, "type": "row", "title": title, "collapsed": False,
                         "gridPos": {"h": 1, "w": 24, "x": 0, "y": s.y}, "panels": []})
        s.y += 1
    def add(s, kind, title, targets, unit="short", w=12, h=8, desc="", extra=None):
        if s.x + w > 24: s.y += s.rowh; s.x = 0; s.rowh = 0
        s.id += 1
        tg = []
        for i, t in enumerate(targets):
            expr, legend = (t if isinstance(t, tuple) else (t, ""))
            t = {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                 "range": kind == "timeseries", "instant": kind != "timeseries"}
            if kind == "table":
                t["format"] = "table"
            tg.append(t)
        p = {"id": s.id, "type": kind, "title": title, "description": desc, "datasource": DS,
             "gridPos": {"h": h, "w": w, "x": s.x, "y": s.y}, "targets": tg,
             "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": {}}
        if kind == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        if kind == "timeseries":
            p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
        if extra: p["fieldConfig"]["defaults"].update(extra)
        s.panels.append(p)
        s.x += w; s.rowh = max(s.rowh, h)
        if s.x >= 24: s.y += s.rowh; s.x = 0; s.rowh = 0
    def write(s):
        d = {"uid": s.uid, "title": s.title, "description": s.desc, "tags": ["liveflow"],
             "editable": True, "graphTooltip": 1, "schemaVersion": 38, "version": 1,
             "refresh": "30s", "time": {"from": "now-1h", "to": "now"}, "timezone": "",
             "templating": {"list": [ds_var()] + s.vars},
             "annotations": {"list": []},
             "links": [{"title": "liveflow", "type": "dashboards", "tags": ["liveflow"], "asDropdown": True}],
             "panels": s.panels}
        with open(os.path.join(OUT, s.uid + ".json"), "w") as f:
            json.dump(d, f, indent=2, ensure_ascii=False); f.write("\n")

R = "$__rate_interval"
REQ = "liveflow_receiver_requests_total"
TIPS_OK = f'sum(rate({REQ}{{endpoint="rewards",status="200"}}[{R}]))'

# ---------------------------------------------------------------- overview
d = Dash("liveflow-overview", "liveflow / overview",
         "Ingress, freshness, dead letters and lag of the whole pipeline at a glance.")
d.row("Health")
d.add("stat", "liveflow targets up", ['sum(up{job="liveflow"}) / count(up{job="liveflow"})'], "percentunit", w=6, h=4,
      desc="Share of liveflow processes Prometheus can scrape.")
d.add("stat", "alerts firing", ['count(ALERTS{alertstate="firing",alertname=~"Liveflow.*"}) or vector(0)'], "short", w=6, h=4)
d.add("stat", "receivers reaching Kafka", ['sum(liveflow_receiver_kafka_reachable) / count(liveflow_receiver_kafka_reachable)'], "percentunit", w=6, h=4,
      desc="Share of receivers that reached a broker within the last 3 s (the others answer 503 at once).")
d.add("stat", "tip success (5m)", [f'{TIPS_OK.replace(R, "5m")} / sum(rate({REQ}{{endpoint="rewards"}}[5m]))'], "percentunit", w=6, h=4,
      desc="Share of POST /v1/rewards answered 200; alert below 95 %.")
d.add("stat", "largest lag", ['max(liveflow_consumer_lag_seconds)'], "s", w=6, h=4,
      desc="Age of the oldest record not yet consumed, over every role and partition.")
d.row("Ingress")
d.add("timeseries", "requests/s by endpoint", [(f'sum by (endpoint) (rate({REQ}[{R}]))', "{{endpoint}}")], "reqps")
d.add("timeseries", "answers/s by status", [(f'sum by (status) (rate({REQ}[{R}]))', "{{status}}")], "reqps")
d.row("Freshness and consumers")
d.add("timeseries", "end-to-end freshness p99 by role (receive → applied)", [(f'histogram_quantile(0.99, sum by (role, le) (rate(liveflow_consumer_freshness_seconds_bucket[{R}])))', "{{role}}")], "s",
      desc="From the receiver's receive_time to the record's effects applied, per role (replays left out).")
d.add("timeseries", "records applied/s by role", [(f'sum by (role) (rate(liveflow_consumer_records_total{{outcome="applied"}}[{R}]))', "{{role}}")], "ops")
d.add("timeseries", "request time p99 by endpoint (receiver)", [(f'histogram_quantile(0.99, sum by (endpoint, le) (rate(liveflow_receiver_request_duration_seconds_bucket[{R}])))', "{{endpoint}}")], "s")
d.add("timeseries", "broker ack p99 (receiver)", [(f'histogram_quantile(0.99, sum by (le) (rate(liveflow_receiver_ack_seconds_bucket[{R}])))', "p99")], "s")
d.row("Dead letters and lag")
d.add("timeseries", "dead-lettered in 15 min by role", [('sum by (role) (increase(liveflow_consumer_records_total{outcome="dead_lettered"}[15m]))', "{{role}}")], "short")
d.add("timeseries", "lag seconds by role", [('max by (role) (liveflow_consumer_lag_seconds)', "{{role}}")], "s")
d.add("timeseries", "lag records by role", [('sum by (role) (liveflow_consumer_lag_records)', "{{role}}")], "short")
d.add("timeseries", "SRS events in the spool", [('sum(liveflow_receiver_spool_records)', "spool")], "short")
d.row("Processes")
d.add("timeseries", "CPU per process", [(f'sum by (process) (rate(process_cpu_seconds_total{{job="liveflow"}}[{R}]))', "{{process}}")], "percentunit")
d.add("timeseries", "resident memory per process", [('sum by (process) (process_resident_memory_bytes{job="liveflow"})', "{{process}}")], "bytes")
d.add("timeseries", "open file descriptors (share of the limit)", [('max by (process) (process_open_fds{job="liveflow"} / process_max_fds{job="liveflow"})', "{{process}}")], "percentunit")
d.add("table", "versions running", [('count by (version, commit) (liveflow_build_info)', "")], "short",
      desc="Processes per build (git describe and commit): more than one row during a rolling upgrade.")
d.add("timeseries", "uptime per process", [('time() - max by (process) (process_start_time_seconds{job="liveflow"})', "{{process}}")], "s")
d.write()

# ---------------------------------------------------------------- receiver
d = Dash("liveflow-receiver", "liveflow / receiver", "liveflow-receiver: requests, answers, signatures, the broker ack, the spool.")
d.row("Requests")
d.add("timeseries", "requests/s by endpoint and status", [(f'sum by (endpoint, status) (rate({REQ}[{R}]))', "{{endpoint}} {{status}}")], "reqps", w=24)
d.add("timeseries", "requests/s by vendor and event type", [(f'sum by (vendor, event_type) (rate({REQ}[{R}]))', "{{vendor}} {{event_type}}")], "reqps")
d.add("timeseries", "request time by endpoint (p50, p99)", [
    (f'histogram_quantile(0.5, sum by (endpoint, le) (rate(liveflow_receiver_request_duration_seconds_bucket[{R}])))', "p50 {{endpoint}}"),
    (f'histogram_quantile(0.99, sum by (endpoint, le) (rate(liveflow_receiver_request_duration_seconds_bucket[{R}])))', "p99 {{endpoint}}")], "s",
      desc="From the request's headers to its answer; POST /v1/rewards p99 alerts above 500 ms.")
d.add("timeseries", "share answered 503", [(f'(sum(rate({REQ}{{status="503"}}[5m])) or vector(0)) / sum(rate({REQ}[5m]))', "503")], "percentunit",
      desc="503: Kafka did not acknowledge in time; alert above 1 %.")
d.add("timeseries", "signature failures/s by vendor and reason", [(f'sum by (vendor, reason) (rate(liveflow_receiver_signature_failures_total[{R}]))', "{{vendor}} {{reason}}")], "ops")
d.add("timeseries", "in flight and open connections", [('sum(liveflow_receiver_inflight)', "requests in flight"),
                                                       ('sum(liveflow_receiver_connections)', "open connections")], "short")
d.add("timeseries", "connections the receiver closed/s by reason", [(f'sum by (reason) (rate(liveflow_receiver_connections_closed_total[{R}]))', "{{reason}}")], "ops",
      desc="header_timeout / request_timeout: slow or stalled clients; pressure: reclaimed near LIVEFLOW_HTTP_MAX_CONNECTIONS.")
d.add("timeseries", "duplicate-callback guard (lock:callback:*) /s", [(f'sum by (result) (rate(liveflow_receiver_callback_lock_total[{R}]))', "{{result}}"),
                                                                     (f'sum(rate(liveflow_receiver_callback_lock_errors_total[{R}]))', "Redis errors")], "ops")
d.add("timeseries", "duplicate-callback guard: Redis round trip", [(f'histogram_quantile(0.5, sum by (call, le) (rate(liveflow_receiver_callback_lock_seconds_bucket[{R}])))', "{{call}} p50"),
                                                                  (f'histogram_quantile(0.99, sum by (call, le) (rate(liveflow_receiver_callback_lock_seconds_bucket[{R}])))', "{{call}} p99")], "s",
      desc="Each claim (SET NX) and \"done\" mark is part of every stored request's time: the 200 waits for both.")
d.row("Kafka")
d.add("timeseries", "Kafka reachable (1) per receiver", [('min by (process) (liveflow_receiver_kafka_reachable)', "{{process}}")], "short",
      desc="0: no broker answered for 3 s; /readyz is 503 and requests are answered 503 at once.")
d.add("timeseries", "broker ack latency", [(f'histogram_quantile(0.5, sum by (le) (rate(liveflow_receiver_ack_seconds_bucket[{R}])))', "p50"),
                                              (f'histogram_quantile(0.99, sum by (le) (rate(liveflow_receiver_ack_seconds_bucket[{R}])))', "p99")], "s")
d.add("timeseries", "producer queue and delivery errors/s", [('sum(liveflow_receiver_producer_queue)', "queue"),
                                                           (f'sum(rate(liveflow_receiver_delivery_errors_total[{R}]))', "delivery errors/s")], "short")
d.add("timeseries", "SRS spool", [('sum(liveflow_receiver_spool_records)', "records waiting"),
                                  (f'sum(rate(liveflow_receiver_spooled_total[{R}]))', "spooled/s"),
                                  (f'sum(rate(liveflow_receiver_spool_replayed_total[{R}]))', "replayed/s")], "short")
d.add("timeseries", "Kafka errors/s by kind (receiver)", [(f'sum by (kind) (rate(liveflow_kafka_errors_total{{service="liveflow-receiver"}}[{R}]))', "{{kind}}")], "ops")
d.add("timeseries", "recordings the vendors reported failed (1 h)", [('sum by (vendor, state) (increase(liveflow_receiver_recording_failures_total[1h]))', "{{vendor}} {{state}}")], "short",
      desc="Tencent 332 record_start_failed / record_error and the other vendors' equivalents.")
d.add("timeseries", "SRS on_publish decisions/s", [(f'sum by (decision, reason) (rate(liveflow_receiver_srs_publish_decisions_total[{R}]))', "{{decision}} {{reason}}")], "ops")
d.add("timeseries", "webhook ids remembered against replays", [('sum(liveflow_receiver_webhook_replay_entries)', "entries")], "short")
d.write()

# ---------------------------------------------------------------- consumer groups
d = Dash("liveflow-consumers", "liveflow / consumer groups",
         "Every consumer group liveflow.<role>: lag per partition, throughput, batch latency, retries, dead letters.", [role_var()])
d.row("Lag")
d.add("timeseries", "lag seconds per partition", [('max by (role, topic, partition) (liveflow_consumer_lag_seconds{role=~"$role"})', "{{role}} {{topic}}[{{partition}}]")], "s",
      desc="Age of the oldest record not yet consumed on each partition.")
d.add("timeseries", "lag records per partition", [('sum by (role, topic, partition) (liveflow_consumer_lag_records{role=~"$role"})', "{{role}} {{topic}}[{{partition}}]")], "short")
d.add("timeseries", "partitions assigned per copy", [('sum by (role, process) (liveflow_consumer_assigned_partitions{role=~"$role"})', "{{process}}")], "short",
      desc="A copy with 0 sits idle (more copies than partitions).")
d.add("timeseries", "records fetched/s by topic, replays among them", [
    (f'sum by (role, topic) (rate(liveflow_consumer_fetched_total{{role=~"$role"}}[{R}]))', "{{role}} {{topic}}"),
    (f'sum by (role, topic) (rate(liveflow_consumer_replayed_total{{role=~"$role"}}[{R}]))', "{{role}} {{topic}} replays")], "ops")
d.add("timeseries", "end-to-end freshness p99 (receive → applied)", [(f'histogram_quantile(0.99, sum by (role, le) (rate(liveflow_consumer_freshness_seconds_bucket{{role=~"$role"}}[{R}])))', "{{role}}")], "s")
d.add("timeseries", "records/s by outcome", [(f'sum by (role, outcome) (rate(liveflow_consumer_records_total{{role=~"$role"}}[{R}]))', "{{role}} {{outcome}}")], "ops")
d.row("Batches and failures")
d.add("timeseries", "batch latency p99", [(f'histogram_quantile(0.99, sum by (role, le) (rate(liveflow_consumer_batch_seconds_bucket{{role=~"$role"}}[{R}])))', "{{role}}")], "s")
d.add("timeseries", "paused: store unavailable (circuit breaker open)", [('max by (role, store) (liveflow_consumer_store_unavailable{role=~"$role"})', "{{role}} {{store}}")], "short",
      desc="1 while the role holds its partitions because MySQL or Redis is unavailable; it resumes by itself.")
d.add("timeseries", "store outages and DLQ write failures (1 h)", [
    ('sum by (role, store) (increase(liveflow_consumer_store_outages_total{role=~"$role"}[1h]))', "{{role}} {{store}} outages"),
    ('sum by (role) (increase(liveflow_consumer_dlq_write_failures_total{role=~"$role"}[1h]))', "{{role}} DLQ write failures")], "short")
d.add("timeseries", "Kafka errors/s by kind (consumers)", [(f'sum by (kind) (rate(liveflow_kafka_errors_total{{service!="liveflow-receiver"}}[{R}]))', "{{kind}}")], "ops")
d.add("timeseries", "retries/s", [(f'sum by (role) (rate(liveflow_consumer_retries_total{{role=~"$role"}}[{R}]))', "{{role}}")], "ops")
d.add("timeseries", "dead-lettered in 15 min", [('sum by (role) (increase(liveflow_consumer_records_total{role=~"$role",outcome="dead_lettered"}[15m]))', "{{role}}")], "short")
d.row("Dead-letter topics (ops/dlq-metrics.sh, every 5 minutes)")
d.add("timeseries", "records in the DLQ by topic and error class", [('sum by (topic, class) (liveflow_dlq_records)', "{{topic}} {{class}}")], "short",
      desc="What liveflow-ctl dlq list counts; transient ones can be replayed with --auto once the store answers.")
d.add("timeseries", "records in the DLQ by consumer group", [('sum by (group) (liveflow_dlq_records_by_group)', "{{group}}")], "short")
d.add("timeseries", "not yet replayed", [('sum by (topic) (liveflow_dlq_pending_records)', "{{topic}}")], "short")
d.add("timeseries", "age of the oldest dead letter", [('time() - min by (topic) (liveflow_dlq_oldest_record_timestamp_seconds)', "{{topic}}")], "s")
d.add("timeseries", "consumer errors and out-of-range offsets (15 min)", [('sum by (role) (increase(liveflow_consumer_errors_total{role=~"$role"}[15m]))', "{{role}} errors"),
                                                                         ('sum by (role) (increase(liveflow_consumer_offset_out_of_range_total{role=~"$role"}[15m]))', "{{role}} out of range")], "short")
d.row("Audience (live.viewer, live.interaction)")
d.add("timeseries", "audience events/s: applied, changed nothing, visits timed out", [
    (f'sum(rate(liveflow_audience_events_total[{R}]))', "applied"),
    (f'sum(rate(liveflow_audience_skipped_total[{R}]))', "changed nothing"),
    (f'sum(rate(liveflow_audience_visit_timeouts_total[{R}]))', "visits timed out")], "ops")
d.add("timeseries", "rooms in live:rank:hot", [('max(liveflow_audience_rank_rooms)', "rooms")], "short")
d.write()

# ---------------------------------------------------------------- money path
d = Dash("liveflow-money", "liveflow / money path",
         "Tips from POST /v1/rewards to recharge, the room figures, the settlement balances and the hourly statistics.")
d.row("Tips")
d.add("timeseries", "tips/s: accepted, recorded, settled, counted", [
    (TIPS_OK, "accepted (200)"),
    (f'sum(rate(liveflow_consumer_records_total{{role="reward-sync",outcome="applied"}}[{R}]))', "reward-sync applied"),
    (f'sum(rate(liveflow_settlement_tips_total{{outcome="settled"}}[{R}]))', "settled"),
    (f'sum(rate(liveflow_consumer_records_total{{role="stats",outcome="applied"}}[{R}]))', "stats applied")], "ops", w=24)
d.add("stat", "tip success (5m)", [f'sum(rate({REQ}{{endpoint="rewards",status="200"}}[5m])) / sum(rate({REQ}{{endpoint="rewards"}}[5m]))'], "percentunit", w=8, h=5)
d.add("stat", "tip response p99 (5m)", ['histogram_quantile(0.99, sum by (le) (rate(liveflow_receiver_request_duration_seconds_bucket{endpoint="rewards"}[5m])))'], "s", w=8, h=5,
      desc="POST /v1/rewards, request in to answer out; alert above 500 ms.")
d.add("stat", "sync backlog (tips not folded into live_room_realtime)", ['sum(liveflow_reward_realtime_pending)'], "short", w=8, h=5,
      desc="Alert above 1 000.")
d.add("stat", "reward-sync without Redis", ['max(liveflow_reward_redis_degraded)'], "short", w=8, h=5)
d.add("stat", "money lag (largest, s)", ['max(liveflow_consumer_lag_seconds{role=~"reward-sync|settlement|stats"})'], "s", w=8, h=5)
d.add("stat", "last reconcile", ['min(liveflow_reconcile_agree)'], "none", w=8, h=5,
      desc="Result of the hourly reconciliation (ops/reconcile-metrics.sh): do recharge, settlement_detail, hourly stats, balances and Redis agree?",
      extra={"mappings": [{"type": "value", "options": {"1": {"text": "ledgers agree", "color": "green"},
                                                         "0": {"text": "DIFFERENCES", "color": "red"}}}],
             "color": {"mode": "thresholds"},
             "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}})
d.add("stat", "since the last reconcile", ['time() - max(liveflow_reconcile_last_run_timestamp_seconds)'], "s", w=8, h=5)
d.add("stat", "last reconcile took", ['max(liveflow_reconcile_duration_seconds)'], "s", w=8, h=5)
d.add("timeseries", "200 → applied (p50, p99): recharge (reward-sync), balance (settlement), hourly stats", [
    (f'histogram_quantile(0.5, sum by (role, le) (rate(liveflow_consumer_freshness_seconds_bucket{{role=~"reward-sync|settlement|stats"}}[{R}])))', "p50 {{role}}"),
    (f'histogram_quantile(0.99, sum by (role, le) (rate(liveflow_consumer_freshness_seconds_bucket{{role=~"reward-sync|settlement|stats"}}[{R}])))', "p99 {{role}}")], "s", w=24,
      desc="From the receiver's receive_time (the tip's 200) to its effect applied: settlement is 200 → balance visible.")
d.row("Ledgers")
d.add("timeseries", "settlement: tips by outcome, withdrawals by status (/s)", [
    (f'sum by (outcome) (rate(liveflow_settlement_tips_total[{R}]))', "tips {{outcome}}"),
    (f'sum by (status) (rate(liveflow_settlement_withdrawals_total[{R}]))', "withdrawals {{status}}")], "ops")
d.add("timeseries", "reward-sync: room folds and rebuilds (/s)", [
    (f'sum(rate(liveflow_reward_realtime_folds_total[{R}]))', "live_room_realtime folds"),
    (f'sum(rate(liveflow_reward_rooms_rebuilt_total[{R}]))', "rooms rebuilt"),
    (f'sum(rate(liveflow_reward_redis_degraded_total[{R}]))', "degraded episodes")], "ops")
d.add("timeseries", "Redis found empty and rebuilt (1 h)", [('sum by (process) (increase(liveflow_redis_data_lost_total[1h]))', "{{process}}")], "short",
      desc="Times reward-sync or the stream role found Redis without liveflow's data and rebuilt it from MySQL.")
d.add("timeseries", "money roles: dead-lettered in 15 min", [('sum by (role) (increase(liveflow_consumer_records_total{role=~"reward-sync|settlement|stats",outcome="dead_lettered"}[15m]))', "{{role}}")], "short")
d.add("timeseries", "sessions summed (settlement, stats) /s", [
    (f'sum(rate(liveflow_settlement_sessions_total[{R}]))', "settlement"),
    (f'sum(rate(liveflow_stats_sessions_computed_total[{R}]))', "stats")], "ops")
d.write()
