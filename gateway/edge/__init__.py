"""The gateway's edge: rules every request passes before it reaches a route (text, body size)."""
