"""goose-compatible migration engine: parser → source → plan (pure), then store/runner (PostgreSQL)."""
