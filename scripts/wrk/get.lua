-- wrk script: GET /get over the 10,000 keys that set.lua (or the bench's preload) wrote.
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/get?key=key-" .. (counter % 10000))
end
