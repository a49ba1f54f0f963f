-- wrk script: POST a chat completion and print `RESULT {json}` at the end.
-- Env: BENCH_BODY_FILE (request body; a small default otherwise), BENCH_API_KEY,
--      BENCH_COUNT_HEADER (optional: count responses per value of this header, e.g.
--      x-switchboard-cache; defining response() slows wrk a little, so only then).
local path = os.getenv("BENCH_BODY_FILE")
local payload = '{"model":"gpt-3.5-turbo","messages":[{"role":"system","content":"You are a helpful assistant."},' ..
                '{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"temperature":0}'
if path and path ~= "" then
  local f = assert(io.open(path, "rb")); payload = f:read("*a"); f:close()
end
wrk.method = "POST"
wrk.body = payload
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "sk-bench")

local count_header = os.getenv("BENCH_COUNT_HEADER")
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("seed", #threads)
end

-- BENCH_RAMP_MS (with BENCH_CONNECTIONS_PER_THREAD): each connection's first request waits a
-- random 0..BENCH_RAMP_MS ms, so the connections start spread over that time, as clients
-- arriving one after the other do, instead of all at one instant (a burst, which scenario 4
-- measures on its own). wrk does not count the wait in the latency.
local ramp_ms = tonumber(os.getenv("BENCH_RAMP_MS") or "") or 0
if ramp_ms > 0 then
  local first_requests = tonumber(os.getenv("BENCH_CONNECTIONS_PER_THREAD") or "") or 0
  local started = 0
  function init(args) math.randomseed(os.time() * 1000 + (seed or 0)) end
  function delay()
    started = started + 1
    if started <= first_requests then return math.random(0, ramp_ms) end
    return 0
  end
end

if count_header and count_header ~= "" then
  counts = {}
  function response(status, headers, body)
    local v = headers[count_header] or "(none)"
    counts[v] = (counts[v] or 0) + 1
  end
end

-- Upper bounds (ms) of the latency histogram's buckets, as in loadgen.py; the last bucket takes
-- everything above. Each bucket's share (%) of the requests comes from bisecting
-- latency:percentile (wrk has no cheap way to count requests below a bound).
local HIST_MS = {0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}

local function share_within(latency, ms) -- % of the requests that took at most `ms`
  if latency.max / 1000 <= ms then return 100 end
  if latency.min / 1000 > ms then return 0 end
  local lo, hi = 0, 100
  for _ = 1, 20 do
    local mid = (lo + hi) / 2
    if latency:percentile(mid) / 1000 <= ms then lo = mid else hi = mid end
  end
  return lo
end

local function histogram(latency)
  local parts, below = {}, 0
  for i = 1, #HIST_MS + 1 do
    local within = HIST_MS[i] and share_within(latency, HIST_MS[i]) or 100
    table.insert(parts, string.format('[%s,%.3f]', HIST_MS[i] and tostring(HIST_MS[i]) or "null", within - below))
    below = within
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local tally = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    if c then for k, v in pairs(c) do tally[k] = (tally[k] or 0) + v end end
  end
  local parts = {}
  for k, v in pairs(tally) do table.insert(parts, string.format('"%s":%d', k, v)) end
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rps":%.2f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"error_count":%d,' ..
    '"latency_ms":{"mean":%.3f,"p50":%.3f,"p90":%.3f,"p99":%.3f,"p99.9":%.3f,"max":%.3f,"hist":%s},' ..
    '"header_counts":{%s}}\n',
    summary.requests, seconds, summary.requests / seconds,
    e.connect, e.read, e.write, e.status, e.timeout, e.connect + e.read + e.write + e.status + e.timeout,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
    histogram(latency), table.concat(parts, ",")))
end
