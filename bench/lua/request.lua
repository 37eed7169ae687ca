-- One fixed request, repeated on every connection; the summary is printed as one JSON line.
-- Arguments after "--": METHOD PATH BODY_FILE [HEADER_NAME HEADER_VALUE]...
-- BODY_FILE is "-" for no body. Latencies are in microseconds.

local request_bytes

function init(args)
  local method, path, body_file = args[1], args[2], args[3]
  local headers = {}
  for i = 4, #args, 2 do
    headers[args[i]] = args[i + 1]
  end
  local body = nil
  if body_file ~= "-" then
    local file = assert(io.open(body_file, "rb"))
    body = file:read("*a")
    file:close()
  end
  request_bytes = wrk.format(method, path, headers, body)
end

function request()
  return request_bytes
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
