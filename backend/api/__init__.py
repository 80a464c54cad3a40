"""The HTTP API: schemas, dependencies, one router module per resource."""
