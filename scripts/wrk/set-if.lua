-- wrk script: PUT /set of the 100-byte value over the 10,000 preloaded keys, with the
-- precondition "ifValue" equal to that same stored value: every request passes its
-- compare-and-set (the cost of evaluating a precondition that holds).
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local value = string.rep("v", 100)
request = function()
  counter = counter + 1
  local body = '{"key":"key-' .. (counter % 10000) .. '","value":"' .. value ..
    '","ifValue":"' .. value .. '"}'
  return wrk.format(nil, "/set", nil, body)
end
