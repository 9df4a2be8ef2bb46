"""Step implementations and the clients they use. Imported by workers; workflows only
reference the declarations."""
