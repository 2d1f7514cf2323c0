-- ipcheck: the optional Lua fast path (needs nginx's Lua module; see docs/fast-path.md).
--
-- Run in a protected location's access phase instead of `auth_request /_ipcheck;`:
--
--     access_by_lua_file /etc/nginx/ipcheck/ipcheck-fastpath.lua;
--
-- A client asked about in the last second (ipcheck-fastpath-http.conf: $ipcheck_fastpath_ttl) is
-- answered from the shared dict `ipcheck_fastpath` with the service's own answer; everything else
-- goes through the very subrequest auth_request would make (/_ipcheck, the gate, the service) and
-- is decided exactly as auth_request decides it. Only a real verdict is remembered: an answer
-- without X-IPCheck-Verdict (the service down, not ipcheck, the location's fallback) never is.
--
-- nginx compiles this file once per worker and runs it as a function per request, so the state
-- below lives in package.loaded and is built on the first request only.

local fast = package.loaded.ipcheck_fastpath
if fast == nil then
    local ngx = ngx
    local var = ngx.var
    local find, sub, lower, gsub, concat = string.find, string.sub, string.lower, string.gsub, table.concat
    local tonumber, type, pairs, pcall = tonumber, type, pairs, pcall

    local dict = ngx.shared.ipcheck_fastpath
    if dict == nil then
        error("ipcheck fast path: no lua_shared_dict ipcheck_fastpath; include "
            .. "ipcheck/ipcheck-fastpath-http.conf inside http { }")
    end

    -- What auth_request does with each status of /_ipcheck, and the one verdict that may be
    -- remembered with it (the gate already answers 204/403/401 only with the matching verdict).
    local VERDICT_OF = { [204] = "allow", [403] = "block", [401] = "challenge" }

    -- Options of the subrequest. copy_all_vars: /_ipcheck reads this request's $ipcheck_policy and
    -- $request_id, as auth_request's subrequest (which shares them) does.
    local CAPTURE = { copy_all_vars = true }

    -- Header name -> nginx variable (X-IPCheck-Country -> ipcheck_country), or false when the
    -- configuration defines no such variable (then the header is neither set nor remembered).
    -- Any X-IPCheck-* header the gate passes on is carried: a new one needs its lines in the gate
    -- and ipcheck.conf (as for auth_request), not a change here.
    local var_of = {}
    -- Every variable a verdict answer has set so far: cleared when a check ends without one, so
    -- the log and the backend see empty fields as with auth_request. It starts with the headers
    -- ipcheck.conf captures today, so this holds from a worker's first request on; any other is
    -- added when an answer first carries it.
    local seen_vars = {}
    local SEED = {
        "X-IPCheck-Verdict", "X-IPCheck-Reason", "X-IPCheck-Cache", "X-IPCheck-Key",
        "X-IPCheck-Country", "X-IPCheck-ASN", "X-IPCheck-Score",
        "X-IPCheck-Observed-Verdict", "X-IPCheck-Observed-Reason",
    }
    local seeded = false

    local function variable_for(name)
        local known = var_of[name]
        if known ~= nil then
            return known
        end
        local lname = lower(name)
        local v = false
        if sub(lname, 1, 10) == "x-ipcheck-" then
            local candidate = "ipcheck_" .. gsub(sub(lname, 11), "-", "_")
            -- Writing an undefined variable raises an error: that is the test.
            if pcall(function() var[candidate] = var[candidate] or "" end) then
                v = candidate
                local listed = false
                for i = 1, #seen_vars do
                    if seen_vars[i] == candidate then
                        listed = true
                    end
                end
                if not listed then
                    seen_vars[#seen_vars + 1] = candidate
                end
            end
        end
        var_of[name] = v
        return v
    end

    -- Sets the variables a remembered answer holds: "name\nvalue\n" pairs.
    local function apply(value)
        local pos = 1
        while true do
            local nl = find(value, "\n", pos, true)
            if nl == nil then
                return
            end
            local nl2 = find(value, "\n", nl + 1, true)
            if nl2 == nil then
                return
            end
            var[sub(value, pos, nl - 1)] = sub(value, nl + 1, nl2 - 1)
            pos = nl2 + 1
        end
    end

    -- The variables of a fresh answer, set now, and the same as a string to remember. A variable
    -- an earlier answer set and this one does not (no reason) is remembered as empty.
    local function take(headers)
        local parts, n, set = {}, 0, {}
        for name, value in pairs(headers) do
            local v = variable_for(name)
            if v then
                if type(value) == "table" then
                    value = concat(value, ", ")
                end
                var[v] = value
                set[v] = true
                n = n + 1
                parts[n] = v .. "\n" .. value .. "\n"
            end
        end
        for i = 1, #seen_vars do
            local v = seen_vars[i]
            if not set[v] then
                var[v] = ""
                n = n + 1
                parts[n] = v .. "\n\n"
            end
        end
        return concat(parts)
    end

    local function clear()
        for i = 1, #seen_vars do
            var[seen_vars[i]] = ""
        end
    end

    local function check()
        local key = var.remote_addr .. "|" .. (var.ipcheck_policy or "")
        local value, status = dict:get(key)
        if value ~= nil then
            apply(value)
            if status == 204 then
                return
            end
            return ngx.exit(status)
        end

        if not seeded then
            for i = 1, #SEED do
                variable_for(SEED[i])
            end
            seeded = true
        end
        -- The id is evaluated here, in the main request, so the subrequest's copy, the service's
        -- decision log and this request's access log name the same one.
        local _ = var.request_id
        local res = ngx.location.capture("/_ipcheck", CAPTURE)
        status = res.status
        local verdict = res.header["X-IPCheck-Verdict"]
        if verdict ~= nil and verdict == VERDICT_OF[status] then
            local remembered = take(res.header)
            local ttl = tonumber(var.ipcheck_fastpath_ttl)
            if ttl ~= nil and ttl > 0 then
                -- set() evicts the least recently used entries when the dict is full; a failure
                -- only means this answer is not remembered.
                local ok, err = dict:set(key, remembered, ttl, status)
                if not ok then
                    ngx.log(ngx.WARN, "ipcheck fast path: answer not remembered: ", err)
                end
            else
                ngx.log(ngx.ERR, "ipcheck fast path: $ipcheck_fastpath_ttl is \"",
                    var.ipcheck_fastpath_ttl, "\", not a number of seconds above 0 ",
                    "(ipcheck-fastpath-http.conf); nothing is remembered")
            end
        else
            clear()
        end
        -- auth_request's rules: any 2xx allows, 401 and 403 are passed on, anything else is an
        -- error.
        if status >= 200 and status < 300 then
            return
        end
        if status == 401 or status == 403 then
            return ngx.exit(status)
        end
        -- The gate's 5xx (no verdict could be had). auth_request's subrequest reaches
        -- @ipcheck_unreachable through /_ipcheck's error_page; a Lua subrequest does not follow
        -- that redirect, so its rule is applied here: the location's $ipcheck_on_unreachable.
        if status >= 500 then
            if var.ipcheck_on_unreachable == "open" then
                return
            end
            return ngx.exit(403)
        end
        ngx.log(ngx.ERR, "ipcheck fast path: /_ipcheck answered ", status)
        return ngx.exit(500)
    end

    fast = { check = check }
    package.loaded.ipcheck_fastpath = fast
end

return fast.check()
