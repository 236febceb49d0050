-- marathon-lb's endpoints on HAProxy's stats port. The files are read when HAProxy loads
-- its configuration, so each answer describes the configuration that is running.

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

local function text_service(body)
  return function(applet)
    applet:set_status(200)
    applet:add_header("content-type", "text/plain")
    applet:add_header("content-length", string.len(body))
    applet:start_response()
    applet:send(body)
  end
end

core.register_service("marathon_lb_getconfig", "http",
                      text_service(contents("MARATHON_LB_CONFIG")))
core.register_service("marathon_lb_getvhostmap", "http",
                      text_service(contents("MARATHON_LB_VHOST_MAP")))
