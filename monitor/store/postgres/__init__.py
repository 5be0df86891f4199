"""The trust's central PostgreSQL store: its schema, the gateways' shipper, and reading it back."""
