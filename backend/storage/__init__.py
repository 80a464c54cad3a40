"""Storage: the only place that builds SQL. Each module is one noun; all take a Session and
return ``backend.domain`` objects. The caller's session dependency commits or rolls back."""
