"""Pure risk logic: decision types, decider protocol, parties, rules, fusion, breaker, market statistics."""
