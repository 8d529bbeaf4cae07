-- wrk script for requests with a JSON body. The request is built once, at start-up, so the
-- load generator spends no Lua time per request.
--   BENCH_METHOD     POST or PUT (default POST)
--   BENCH_BODY_FILE  file whose contents are sent as the body
local f = assert(io.open(assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE not set"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.headers["Content-Type"] = "application/json"
