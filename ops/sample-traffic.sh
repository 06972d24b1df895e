#!/bin/sh
# ops/sample-traffic.sh: a little signed traffic for a running local stack, so that its
# dashboards and consoles have something to show: Tencent stream begin / recording /
# screenshot / end callbacks, SRS hooks, audience events, tips and a withdrawal, plus a few requests that
# are refused on purpose (a forged signature, a malformed body).
#
#   sh ops/sample-traffic.sh [ENV_FILE] [ROUNDS]   (ENV_FILE defaults to .run/env, ROUNDS to 5)
#
# Exits 0 when every request got the status it should, 1 otherwise (each miss is named).
set -u

LF_PROG=sample-traffic
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ops/lib.sh"

ENV_FILE=${1:-$ROOT/.run/env}
ROUNDS=${2:-5}
[ -r "$ENV_FILE" ] || { note "no $ENV_FILE: start the stack first (make run)"; exit 2; }
case "$ROUNDS" in '' | *[!0-9]*) note "ROUNDS must be a number"; exit 2 ;; esac
. "$ENV_FILE"

URL=$LIVEFLOW_RECEIVER_URL
MISSES=0
RUN_ID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')

# post EXPECTED_STATUS PATH BODY [HEADER...]: POSTs BODY as JSON and checks the status.
post() {
        local want=$1 path=$2 body=$3 got
        shift 3
        got=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 15 -X POST \
                -H 'Content-Type: application/json' "$@" --data-binary "$body" "$URL$path") || got=000
        if [ "$got" != "$want" ]; then
                note "POST $path: $got, expected $want"
                MISSES=$((MISSES + 1))
        fi
}

# tencent EXPECTED TYPE STREAM [KEY]: a Tencent callback of TYPE signed with KEY.
tencent() {
        local want=$1 type=$2 stream=$3 key=${4:-${LIVEFLOW_TENCENT_KEY%%,*}} t sign extra=""
        t=$(($(date +%s) + 600))
        sign=$(printf '%s%s' "$key" "$t" | md5sum | cut -d' ' -f1)
        case "$type" in
        100) extra=',"file_id":"f_'$stream'_'$t'","video_url":"http://v.example/'$stream'.mp4","duration":60,"file_size":1024,"start_time":'$((t - 700))',"end_time":'$((t - 640))'' ;;
        332) extra=',"record_event":"record_start_failed","seq":"'$RUN_ID$stream'332","session_id":"sess_'$stream'","task_id":"task_'$stream'"' ;;
        200) extra=',"pic_url":"/'$stream'/'$t'.jpg","pic_full_url":"http://p.example/'$stream'/'$t'.jpg","create_time":'$((t - 650))'' ;;
        esac
        post "$want" /callbacks/tencent '{"app":"demo.example","appid":1,"appname":"live","channel_id":"'$stream'","errcode":0,"errmsg":"ok","event_time":'$((t - 600))',"event_type":'$type',"node":"127.0.0.1","sequence":"'$RUN_ID$stream$type'","sign":"'$sign'","stream_id":"'$stream'","stream_param":"anchor_id=anchor_'$stream'&room_id=room_'$stream'","t":'$t',"user_ip":"127.0.0.1"'$extra'}'
}

# webhook EXPECTED PATH BODY: a Standard Webhooks call signed with the first secret.
webhook() {
        local want=$1 path=$2 body=$3 id ts key sig
        id=msg_$RUN_ID$(od -An -N6 -tx1 /dev/urandom | tr -d ' ')
        ts=$(date +%s)
        key=$(printf '%s' "${LIVEFLOW_HMAC_SECRET%%,*}" | sed 's/^whsec_//' | base64 -d | od -An -v -tx1 | tr -d ' \n')
        sig=$(printf '%s.%s.%s' "$id" "$ts" "$body" |
                openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64)
        post "$want" "$path" "$body" -H "webhook-id: $id" -H "webhook-timestamp: $ts" \
                -H "webhook-signature: v1,$sig"
}

srs() {
        post "$1" "/callbacks/srs?token=$LIVEFLOW_SRS_TOKEN" '{"action":"'$2'","client_id":"c'$3'","ip":"127.0.0.1","vhost":"__defaultVhost__","app":"live","stream":"'$3'","param":"?anchor_id=anchor_'$3'&room_id=room_'$3'"}'
}

i=0
while [ "$i" -lt "$ROUNDS" ]; do
        s=s${RUN_ID}_$i
        tencent 200 1 "$s"
        tencent 200 200 "$s"
        tencent 200 100 "$s"
        tencent 200 332 "$s"
        srs 200 on_play "$s"
        now=$(($(date +%s) * 1000))
        webhook 200 /v1/rewards '{"trace_id":"tip_'$s'_a","audience_id":"u_'$i'","anchor_id":"anchor_'$s'","room_id":"room_'$s'","amount":'$((100 + i))',"gift_id":"g1","gift_count":1,"ts":'$now'}'
        webhook 200 /v1/rewards '{"trace_id":"tip_'$s'_b","audience_id":"u_x","anchor_id":"anchor_'$s'","room_id":"room_'$s'","amount":50,"gift_id":"g2","gift_count":2,"ts":'$now'}'
        webhook 200 /v1/withdrawals '{"request_id":"wd_'$s'","anchor_id":"anchor_'$s'","amount":10}'
        webhook 200 /v1/events '{"events":[{"event_id":"ev_'$s'_1","type":"enter","ts":'$now',"audience_id":"u_'$i'","room_id":"room_'$s'","stream_id":"'$s'"},{"event_id":"ev_'$s'_2","type":"chat","ts":'$((now + 1000))',"audience_id":"u_'$i'","room_id":"room_'$s'","stream_id":"'$s'"},{"event_id":"ev_'$s'_3","type":"like","ts":'$((now + 2000))',"audience_id":"u_'$i'","room_id":"room_'$s'","stream_id":"'$s'","count":3},{"event_id":"ev_'$s'_4","type":"exit","ts":'$((now + 3000))',"audience_id":"u_'$i'","room_id":"room_'$s'","stream_id":"'$s'"}]}'
        srs 200 on_stop "$s"
        tencent 200 0 "$s"
        # Refused on purpose: a forged sign, a forged webhook, a body that is not JSON (none of
        # them a tip, so the tip success stays 100 %).
        tencent 401 1 "$s" forged-key
        post 401 /v1/withdrawals '{"request_id":"x"}' -H "webhook-id: msg_forged_$s" \
                -H "webhook-timestamp: $(date +%s)" -H 'webhook-signature: v1,Zm9yZ2VkCg=='
        post 400 /callbacks/tencent 'not json'
        i=$((i + 1))
done

if [ "$MISSES" -ne 0 ]; then
        note "$MISSES requests did not get the status they should"
        exit 1
fi
note "$ROUNDS rounds sent to $URL"
