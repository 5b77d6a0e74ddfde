-- wrk script: PUT /set with a 100-byte value over a space of 10,000 keys.
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local value = string.rep("v", 100)
request = function()
  counter = counter + 1
  local body = '{"key":"key-' .. (counter % 10000) .. '","value":"' .. value .. '"}'
  return wrk.format(nil, "/set", nil, body)
end
