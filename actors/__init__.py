"""The pure kernel (actors.core) and the Ray hosts around it: shard service, directory, risk pool, runtime."""
