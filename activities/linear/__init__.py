"""Linear: a typed GraphQL client, the steps that use it, and a local Linear-compatible
server for tests and the embedded demo."""
