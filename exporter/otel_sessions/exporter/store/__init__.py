"""Redis: the gateway, the key layout and schema, the Lua scripts, the session store, the chunk codec."""
