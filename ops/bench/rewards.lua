-- ops/bench/rewards.lua: the wrk script of the money benchmark (ops/bench/money.sh).
-- It sends pre-signed POST /v1/rewards requests read from BENCH_REWARDS_FILE (wrk's Lua
-- has no HMAC: money.sh generates and signs them just before the run), paced to a fixed
-- rate, and records for every tip when its answer came back.
--
-- File format, one request per line, tab-separated:
--   trace_id  webhook-id  webhook-timestamp  webhook-signature  body
-- Thread k (1..BENCH_THREADS) takes lines k, k+T, k+2T, ...
--
-- Pacing: each thread owns rate/threads of BENCH_RATE; its i-th request is due at
-- start + i * interval. wrk calls delay() before each request of a connection (once its
-- previous answer is in), and delay() hands that connection the next free slot, so the
-- thread never sends ahead of schedule; when the server is slower than the schedule the
-- connections send back to back (the offered rate is then not reached: money.sh reports
-- the achieved rate).
--
-- Every request carries X-Request-Id = trace_id; the receiver echoes it, so response()
-- knows which tip was answered. Once all its requests are answered, a thread writes
-- BENCH_DONE_DIR/acks-<id>.tsv ("trace_id status answer_us send_us", wall-clock
-- microseconds) and the marker BENCH_DONE_DIR/thread-<id>, then stops; money.sh waits
-- for the markers and then stops wrk with SIGINT.
--
-- done() prints "BENCH " lines like tencent.lua's.

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
   sent, answered, ok = 0, 0, 0
   statuses = {}
   first_us, last_us = 0, 0
   finished = false
   done_dir = os.getenv("BENCH_DONE_DIR")
   local file = os.getenv("BENCH_REWARDS_FILE")
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   local rate = tonumber(os.getenv("BENCH_RATE") or "1000")
   if not done_dir or not file then
      error("BENCH_DONE_DIR and BENCH_REWARDS_FILE must be set")
   end
   interval_us = 1000000 * nthreads / rate
   reqs = {}
   local i = 0
   for line in io.lines(file) do
      i = i + 1
      if (i - 1) % nthreads == id - 1 then
         local trace, wid, wts, wsig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
         if not trace then
            error("bad line " .. i .. " in " .. file)
         end
         reqs[#reqs + 1] = { trace = trace, headers = {
            ["Content-Type"] = "application/json",
            ["X-Request-Id"] = trace,
            ["webhook-id"] = wid,
            ["webhook-timestamp"] = wts,
            ["webhook-signature"] = wsig,
         }, body = body }
      end
   end
   quota = #reqs
   next_slot = nil   -- wall-clock microseconds of the next free send slot
   send_us = {}      -- trace -> when request() built it
   acks = {}         -- lines for acks-<id>.tsv
   -- wrk calls request() of the first thread once before the run to check that it
   -- parses: that call must not consume a tip.
   is_verify_call = id == 1
end

function delay()
   local now = now_us()
   if not next_slot then
      next_slot = now
   end
   local wait = next_slot - now
   next_slot = next_slot + interval_us
   if wait <= 0 then
      return 0
   end
   return math.floor(wait / 1000)
end

local function finish_if_idle()
   if finished or answered < sent or sent < quota then
      return
   end
   finished = true
   local f = io.open(done_dir .. "/acks-" .. id .. ".tsv", "w")
   if f then
      f:write(table.concat(acks, "\n"))
      if #acks > 0 then f:write("\n") end
      f:close()
   end
   f = io.open(done_dir .. "/thread-" .. id, "w")
   if f then
      f:write(string.format("%d %d %d\n", sent, answered, ok))
      f:close()
   end
   wrk.thread:stop()
end

function request()
   if is_verify_call then
      is_verify_call = false
      local r = reqs[1]
      if not r then return wrk.format("GET", "/healthz") end
      -- Same shape, no signature: never accepted, so it cannot become a tip.
      return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, "{}")
   end
   if sent >= quota then
      finish_if_idle()
      return ""   -- written as nothing: this connection sends no more
   end
   local now = now_us()
   if first_us == 0 then first_us = now end
   sent = sent + 1
   local r = reqs[sent]
   send_us[r.trace] = now
   return wrk.format("POST", nil, r.headers, r.body)
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
   local trace = headers["X-Request-Id"] or headers["x-request-id"] or "-"
   acks[#acks + 1] = string.format("%s\t%d\t%.0f\t%.0f", trace, status, now, send_us[trace] or 0)
   finish_if_idle()
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
