local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/noop/products/" .. ((n % 100) + 1) .. "")
end
