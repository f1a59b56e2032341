"""The ClickHouse store: chDB embedded (``path:``) or a server (``host:``)."""
