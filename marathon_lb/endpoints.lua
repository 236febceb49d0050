-- marathon-lb's endpoints on HAProxy's stats port. The files are read on each request:
-- marathon-lb replaces them (atomically) with what runs, after a reload and after changing
-- server slots through the runtime API, which no reload would make HAProxy read again.

local function contents(variable)
  local path = os.getenv(variable)
  if path == nil then
    return ""
  end
  local file = io.open(path, "r")
  if file == nil then
    return ""
  end
  local text = file:read("*a")
  file:close()
  return text
end

local function text_service(variable)
  return function(applet)
    local body = contents(variable)
    applet:set_status(200)
    applet:add_header("content-type", "text/plain")
    applet:add_header("content-length", string.len(body))
    applet:start_response()
    applet:send(body)
  end
end

core.register_service("marathon_lb_getconfig", "http",
                      text_service("MARATHON_LB_CONFIG"))
core.register_service("marathon_lb_getvhostmap", "http",
                      text_service("MARATHON_LB_VHOST_MAP"))
