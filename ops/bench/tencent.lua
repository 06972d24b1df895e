-- ops/bench/tencent.lua: the wrk script of make bench (ops/bench/run.sh). Each request is
-- a signed Tencent CSS callback of type BENCH_EVENT_TYPE with its own stream_id (and
-- anchor), so keys spread over every partition of its topic and every callback is a
-- distinct event (its own event id, and its own row in the consumer's table):
--   1   stream begin (default; about 600 bytes, shaped like
--       shared/payloads/tencent-css/push.json), live.stream: own sequence;
--   100 record file (record.json), live.record: own file_id / record_file_id, video_url;
--   200 snapshot (screenshot.json), live.snapshot: own pic_url / pic_full_url;
--   317 image moderation (moderation-image.json, one entry per result list),
--       live.audit: own streamId / img.
-- Every time field (start/end, create_time, screenshotTime) is the thread's start time.
--
-- A run ends cleanly: once a thread is past its deadline (BENCH_SECONDS after its first
-- request) or has sent its share of BENCH_QUOTA, request() returns an empty string, which
-- wrk writes as nothing, so that connection falls silent instead of starting another
-- callback. When every callback the thread sent has its answer, the thread writes
-- BENCH_DONE_DIR/thread-<id> and stops; run.sh waits for all of them and then stops wrk
-- (SIGINT, so wrk calls done()). No request is in flight when wrk stops, so the 200s wrk
-- counted must be exactly the records the receiver added to Kafka. wrk's -d is only a cap.
--
-- Environment (set by run.sh):
--   BENCH_TENCENT_T, BENCH_TENCENT_SIGN  t (a future Unix second) and MD5(key .. t) in hex,
--                                        computed once for the run
--   BENCH_RUN                            tag in every stream_id, distinct per wrk run
--   BENCH_EVENT_TYPE                     1 (default), 100, 200 or 317: see above
--   BENCH_THREADS                        wrk's -t, to share BENCH_QUOTA between threads
--   BENCH_SECONDS                        how long each thread sends callbacks (timed run)
--   BENCH_QUOTA                          > 0: send exactly that many callbacks in all
--   BENCH_DONE_DIR                       where the threads' markers go
--
-- done() prints lines starting with "BENCH " that run.sh parses: callbacks sent and
-- answered, 200s, the other statuses, the window from the first request to the last
-- answer, latency percentiles (microseconds) and wrk's socket errors. wrk's threads have
-- separate Lua states: done() collects each thread's globals through the handles kept by
-- setup().

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")

local function now_us()
   ffi.C.gettimeofday(tv, nil)
   return tonumber(tv.tv_sec) * 1000000 + tonumber(tv.tv_usec)
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

function init(args)
   -- Globals, so that done() can read them from each thread.
   sent, answered, ok = 0, 0, 0
   statuses = {}   -- non-200 status -> count
   first_us, last_us = 0, 0
   finished = false
   run = os.getenv("BENCH_RUN") or "run"
   event_type = tonumber(os.getenv("BENCH_EVENT_TYPE") or "1")
   if not templates[event_type] then
      error("BENCH_EVENT_TYPE must be 1, 100, 200, 317 or 321, not " .. tostring(os.getenv("BENCH_EVENT_TYPE")))
   end
   t = os.getenv("BENCH_TENCENT_T")
   sign = os.getenv("BENCH_TENCENT_SIGN")
   done_dir = os.getenv("BENCH_DONE_DIR")
   if not t or not sign or not done_dir then
      error("BENCH_TENCENT_T, BENCH_TENCENT_SIGN and BENCH_DONE_DIR must be set")
   end
   local total = tonumber(os.getenv("BENCH_QUOTA") or "0")
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   if total > 0 then
      -- thread ids are 1..nthreads; the first (total % nthreads) threads take one more
      quota = math.floor(total / nthreads) + ((id <= total % nthreads) and 1 or 0)
   else
      seconds = tonumber(os.getenv("BENCH_SECONDS") or "10")
   end
   deadline_us = nil   -- set by the first request
   event_time = os.time()
   headers = { ["Content-Type"] = "application/json" }
   -- wrk calls request() of the first thread once before the run, only to check that the
   -- request parses: that call must not count as a callback sent.
   is_verify_call = id == 1
end

-- One ~600-byte body; n makes stream, sequence and anchor unique within the run.
local body_format = '{"app":"push.bench.liveflow.test","appid":1250000001,"appname":"live",'
   .. '"channel_id":"%s","errcode":0,"errmsg":"ok","event_time":%d,"event_type":1,'
   .. '"height":1080,"idc_id":34,"node":"127.0.0.1","sequence":"%d%012d","set_id":2,'
   .. '"sign":"%s","stream_id":"%s","stream_param":"txSecret=4a1d6b0c9e2f7a3b5c8d1e0f2a4b6c8d'
   .. '&txTime=7FFFFFFF&anchor_id=anchor-%s-%d-%d&room_id=room-%s-%d-%d&app_ver=3.12.0'
   .. '&os=android-14&net=wifi&codec=h264&fps=30&res=1920x1080&kbps=4500",'
   .. '"t":%s,"user_ip":"127.0.0.1","width":1920}'

-- 100 (record.json); callback_ext carries a distinct session_id.
local record_format = '{"event_type":100,"appid":12345678,"app":"test.domain.com",'
   .. '"callback_ext":"{\\"video_codec\\":\\"h264\\",\\"resolution\\":\\"640x480\\",'
   .. '\\"session_id\\":\\"%d%012d\\"}","appname":"live","stream_id":"%s","channel_id":"%s",'
   .. '"file_id":"%s","record_file_id":"%s","record_temp_id":"","file_format":"hls","task_id":"",'
   .. '"start_time":%d,"end_time":%d,"start_time_usec":316441,"end_time_usec":618577,'
   .. '"duration":154,"file_size":277941079,'
   .. '"stream_param":"stream_param=test&anchor_id=%s&room_id=%s",'
   .. '"video_url":"http://12345678.vod2.myqcloud.com/bench/%s/%s.m3u8","media_start_time":135802,'
   .. '"record_bps":0,"sign":"%s","t":%s}'

-- 200 (screenshot.json)
local snapshot_format = '{"app":"test.domain.com","appname":"live","channel_id":"%s",'
   .. '"create_time":%d,"event_type":200,"file_size":30670,"height":720,'
   .. '"pic_full_url":"http://your.cos.region.myqcloud.com/%s/%s-screenshot-10-12-05-1280x720.jpg",'
   .. '"pic_url":"/%s/%s-screenshot-10-12-05-1280x720.jpg","sign":"%s","stream_id":"%s",'
   .. '"stream_param":"txSecret=ca3e25e5dc17a6f9909a9ae7281e300d&txTime=60B83800'
   .. '&anchor_id=%s&room_id=%s","t":%s,"width":1280}'

-- 317 (moderation-image.json, the hit entry of each result list kept)
local audit_format = '{"ocrMsg":"","type":[1],"score":[99],"screenshotTime":%d,'
   .. '"img":"http://1.1.1.1/download/porn/%s.jpg","sendTime":%d,"suggestion":"Block",'
   .. '"label":"Porn","subLabel":"PornHigh","labelResults":[{"HitFlag":1,"Scene":"Porn",'
   .. '"Suggestion":"Block","Label":"Porn","SubLabel":"PornHigh","Score":99,"Details":['
   .. '{"Id":0,"Name":"PornHigh","Score":99}]}],"objectResults":[{"HitFlag":0,"Scene":"QrCode",'
   .. '"Suggestion":"Pass","Label":"Normal","SubLabel":"","Score":0,"Names":[],"Details":[]}],'
   .. '"ocrResults":[{"HitFlag":0,"Scene":"OCR","Suggestion":"Pass","Label":"Normal",'
   .. '"SubLabel":"","Score":0,"Text":"","Details":[]}],"libResults":[],"streamId":"%s",'
   .. '"channelId":"%s","stream_param":"txSecret=40f38f69f574fd51126c421a3d96c374&txTime=5DEBEC80'
   .. '&anchor_id=%s&room_id=%s","app":"test.domain.com","appname":"live","appid":12345678,'
   .. '"event_type":317,"sign":"%s","t":%s}'

-- 321 (push abnormal: kept on live.other, not acted on)
local other_format = '{"event_type":321,"appid":12345678,"app":"test.domain.com","appname":"live",'
   .. '"stream_id":"%s","channel_id":"%s","errcode":1,"errmsg":"push abnormal","event_time":%d,'
   .. '"stream_param":"anchor_id=%s&room_id=%s","sign":"%s","t":%s}'

-- templates[type](n): the body of callback n of this thread.
templates = {
   [1] = function(n)
      local stream = string.format("bench-%s-%d-%d", run, id, n)
      return string.format(body_format, stream, event_time, id, n, sign, stream,
                           run, id, n, run, id, n, t)
   end,
   [100] = function(n)
      local stream = string.format("bench-%s-%d-%d", run, id, n)
      local file = string.format("%s-%d-%d", run, id, n)
      return string.format(record_format, id, n, stream, stream, file, file,
                           event_time - 154, event_time, "anchor-" .. stream, "room-" .. stream,
                           stream, file, sign, t)
   end,
   [200] = function(n)
      local stream = string.format("bench-%s-%d-%d", run, id, n)
      return string.format(snapshot_format, stream, event_time, stream, stream, stream, stream,
                           sign, stream, "anchor-" .. stream, "room-" .. stream, t)
   end,
   [321] = function(n)
      local stream = string.format("bench-%s-%d-%d", run, id, n)
      return string.format(other_format, stream, stream, event_time, "anchor-" .. stream,
                           "room-" .. stream, sign, t)
   end,
   [317] = function(n)
      local stream = string.format("bench-%s-%d-%d", run, id, n)
      return string.format(audit_format, event_time, stream, event_time, stream, stream,
                           "anchor-" .. stream, "room-" .. stream, sign, t)
   end,
}

local function callback(n)
   return wrk.format("POST", nil, headers, templates[event_type](n))
end

-- True once this thread must send no more callbacks.
local function is_stopping(now)
   if quota then
      return sent >= quota
   end
   return deadline_us ~= nil and now >= deadline_us
end

-- Writes the marker and stops the thread once all it sent is answered.
local function finish_if_idle()
   if finished or answered < sent then
      return
   end
   finished = true
   local f = io.open(done_dir .. "/thread-" .. id, "w")
   if f then
      f:write(string.format("%d %d %d\n", sent, answered, ok))
      f:close()
   end
   wrk.thread:stop()
end

function request()
   if is_verify_call then
      is_verify_call = false
      return callback(0)
   end
   local now = now_us()
   if not deadline_us then
      first_us = now
      if seconds then
         deadline_us = now + seconds * 1000000
      end
   end
   if is_stopping(now) then
      finish_if_idle()
      return ""   -- written as nothing: this connection sends no more
   end
   sent = sent + 1
   return callback(sent)
end

function response(status, headers, body)
   local now = now_us()
   answered = answered + 1
   last_us = now
   if status == 200 then
      ok = ok + 1
   else
      statuses[status] = (statuses[status] or 0) + 1
   end
   if is_stopping(now) then
      finish_if_idle()
   end
end

function done(summary, latency, requests)
   local s, a, o, other, first, last = 0, 0, 0, {}, nil, 0
   for _, thread in ipairs(threads) do
      s = s + thread:get("sent")
      a = a + thread:get("answered")
      o = o + thread:get("ok")
      for status, count in pairs(thread:get("statuses")) do
         other[status] = (other[status] or 0) + count
      end
      local f, l = thread:get("first_us"), thread:get("last_us")
      if f > 0 and (not first or f < first) then first = f end
      if l > last then last = l end
   end
   io.write(string.format("BENCH sent=%d answered=%d ok=%d window_us=%.0f\n", s, a, o,
                          (first and last > first) and (last - first) or 0))
   for status, count in pairs(other) do
      io.write(string.format("BENCH status %d %d\n", status, count))
   end
   io.write(string.format("BENCH latency_us p50=%d p90=%d p99=%d max=%d\n",
                          math.floor(latency:percentile(50)),
                          math.floor(latency:percentile(90)),
                          math.floor(latency:percentile(99)), math.floor(latency.max)))
   local e = summary.errors
   io.write(string.format("BENCH errors connect=%d read=%d write=%d timeout=%d\n",
                          e.connect, e.read, e.write, e.timeout))
end
