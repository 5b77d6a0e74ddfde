-- wrk script: PUT /set with a 100-byte value under a random key out of KVSTORE_BENCH_KEYS
-- (default 1,000,000) keys. Each wrk thread seeds its own generator.
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local keys = tonumber(os.getenv("KVSTORE_BENCH_KEYS") or "1000000")
local value = string.rep("v", 100)
local seeded = false
request = function()
  if not seeded then
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    seeded = true
  end
  local body = '{"key":"key-' .. math.random(0, keys - 1) .. '","value":"' .. value .. '"}'
  return wrk.format(nil, "/set", nil, body)
end
