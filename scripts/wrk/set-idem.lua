-- wrk script: PUT /set of a 100-byte value over 10,000 keys, each request with its own
-- Idempotency-Key (KVSTORE_BENCH_NONCE, the wrk thread and a counter: unique per request and
-- per run), so every request is a first outcome the server records.
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local nonce = os.getenv("KVSTORE_BENCH_NONCE") or tostring(os.time())
local ids = 0
function setup(thread)
  thread:set("tid", ids)
  ids = ids + 1
end
local counter = 0
local value = string.rep("v", 100)
request = function()
  counter = counter + 1
  local body = '{"key":"key-' .. (counter % 10000) .. '","value":"' .. value .. '"}'
  local headers = { ["Idempotency-Key"] = "bench-" .. nonce .. "-" .. tid .. "-" .. counter }
  return wrk.format(nil, "/set", headers, body)
end
