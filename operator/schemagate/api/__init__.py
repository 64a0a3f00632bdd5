"""The SchemaMigration API: pydantic models (the single source), condition reasons, CRD generation."""
