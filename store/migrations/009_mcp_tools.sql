-- The MCP tools a session offers the model, listed when its servers started
-- (names, descriptions and input schemas: never the servers' header or env values).
CREATE TABLE session_mcp_tools (
  session_id text PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
  tools jsonb NOT NULL,
  listed_at timestamptz NOT NULL DEFAULT now()
);
