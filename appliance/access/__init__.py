"""Who may do what: users with roles and tokens, the rule each HTTP route declares, and the
actor every write is recorded under."""
