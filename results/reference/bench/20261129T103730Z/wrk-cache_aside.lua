local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/cache_aside/products/" .. ((n % 100) + 1) .. "")
end
