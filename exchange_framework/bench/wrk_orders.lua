-- wrk script of `exchange bench api`: signed POST /api/v3/order requests, read from a file.
-- Argument: FILE, one "api key<TAB>form body" per line, already signed; each thread sends them in a loop,
-- starting at its own offset. Counts non-200 answers by status; done() prints one JSON line for the bench.

local requests, count, next_index = {}, 0, 0
statuses = {}

function setup(thread)
  thread:set("offset", (#threads) * 7919)
  table.insert(threads, thread)
end

threads = {}

function init(args)
  for line in io.lines(args[1]) do
    local key, body = line:match("^([^\t]+)\t(.+)$")
    count = count + 1
    requests[count] = wrk.format("POST", "/api/v3/order", {
      ["X-MBX-APIKEY"] = key,
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, body)
  end
  next_index = (offset or 0) % count
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end

function response(status, headers, body)
  if status ~= 200 then
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local totals, errors = {}, {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  for status, n in pairs(totals) do
    errors[#errors + 1] = string.format('"%s": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"socket_errors": %d, "errors": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect + e.read + e.write + e.timeout, table.concat(errors, ", ")))
end
