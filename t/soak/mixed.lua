-- wrk script for t/soak/soak.pl: a mixed load on the registry.  Each wrk
-- thread keeps its own models (the ids its registrations got, in order)
-- and sends, at random: 30% GET /models/{id}, 15% lists, 20% downloads,
-- 10% PUT (score), 25% churn -- a registration (multipart, a small ZIP)
-- while the thread holds fewer than "target" models, else a DELETE of its
-- oldest -- so the table stays the same size however long it runs.
--
-- wrk -s mixed.lua URL -- ZIPFILE STATSDIR TARGET PREFIX QUIET
--
-- From QUIET (a time(2) second) on, only reads: every write has its
-- answer by the time wrk stops, so what the threads hold is exactly what
-- the registry must hold.
--
-- Each thread writes its counts (answers by status, requests by kind) to
-- STATSDIR/thread-N once a second; done() writes wrk's own summary
-- (socket errors, latency) and each thread's models to STATSDIR.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

-- (statsdir is a global: done() runs in wrk's main state, which has no
-- args, and reads it from a thread)
local zip, target, prefix, boundary, quiet
-- this thread's models, oldest first (globals: done() reads them)
ids, head, tail = {}, 1, 0
local seq = 0
local status, kinds = {}, {}
local last = 0

function init(args)
    local f = assert(io.open(args[1], "rb"))
    zip = f:read("*a")
    f:close()
    statsdir, target, prefix = args[2], tonumber(args[3]), args[4]
    quiet = tonumber(args[5])
    boundary = "soak" .. prefix .. tid
    math.randomseed(os.time() * 100 + tid)
end

local function count(t, k)
    t[k] = (t[k] or 0) + 1
end

local function part(name, value, extra)
    return "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\""
           .. name .. "\"" .. (extra or "\r\n") .. "\r\n" .. value .. "\r\n"
end

local function register()
    seq = seq + 1
    count(kinds, "register")
    local body = part("file", zip, "; filename=\"model.zip\"\r\n"
                      .. "Content-Type: application/zip\r\n")
                 .. part("name", string.format("soak-%s%d-%d", prefix, tid,
                                               seq))
                 .. part("version", "1")
                 .. part("precision", "FP16")
                 .. "--" .. boundary .. "--\r\n"
    return wrk.format("POST", "/models", { ["Content-Type"] =
        "multipart/form-data; boundary=" .. boundary }, body)
end

local function any()
    return ids[math.random(head, tail)]
end

function request()
    local n = tail - head + 1
    local r = math.random(100)

    if n > 0 and os.time() >= quiet then
        count(kinds, "read")
        return wrk.format("GET", "/models/" .. any())
    end

    if n == 0 or (r > 75 and n < target) then
        return register()
    end

    if r > 75 then
        local id = ids[head]
        ids[head] = nil
        head = head + 1
        count(kinds, "delete")
        return wrk.format("DELETE", "/models/" .. id)
    end

    if r <= 30 then
        count(kinds, "read")
        return wrk.format("GET", "/models/" .. any())
    end

    if r <= 45 then
        count(kinds, "list")
        if r <= 38 then
            return wrk.format("GET", "/models?limit=20&name=soak-"
                                     .. prefix .. tid .. "-")
        end
        return wrk.format("GET", "/models?limit=50&precision=fp16")
    end

    if r <= 65 then
        count(kinds, "download")
        return wrk.format("GET", "/models/" .. any() .. "/files")
    end

    count(kinds, "update")
    return wrk.format("PUT", "/models/" .. any(),
        { ["Content-Type"] = "application/x-www-form-urlencoded" },
        string.format("score=%d.%02d", math.random(0, 9), math.random(0, 99)))
end

local function write_stats()
    local f = io.open(statsdir .. "/thread-" .. tid .. ".tmp", "w")
    for k, v in pairs(status) do f:write("status ", k, " ", v, "\n") end
    for k, v in pairs(kinds) do f:write("kind ", k, " ", v, "\n") end
    f:write("models ", tail - head + 1, "\n")
    f:close()
    os.rename(statsdir .. "/thread-" .. tid .. ".tmp",
              statsdir .. "/thread-" .. tid)
end

function response(st, headers, body)
    count(status, st)
    if st == 201 then
        tail = tail + 1
        ids[tail] = body
    end
    local now = os.time()
    if now ~= last then
        last = now
        write_stats()
    end
end

function done(summary, latency, requests)
    local statsdir = threads[1]:get("statsdir")
    local f = io.open(statsdir .. "/summary", "w")
    f:write("requests ", summary.requests, "\n")
    f:write("duration_us ", summary.duration, "\n")
    for _, k in ipairs({ "connect", "read", "write", "status", "timeout" }) do
        f:write("socket_errors ", k, " ", summary.errors[k], "\n")
    end
    for _, p in ipairs({ 50, 99, 99.9 }) do
        f:write("latency_us p", p, " ", latency:percentile(p), "\n")
    end
    f:write("latency_us max ", latency.max, "\n")
    f:close()
    for i, t in ipairs(threads) do
        local m = io.open(statsdir .. "/models-" .. i, "w")
        local h, tl, l = t:get("head"), t:get("tail"), t:get("ids")
        for j = h, tl do m:write(l[j], "\n") end
        m:close()
    end
end
