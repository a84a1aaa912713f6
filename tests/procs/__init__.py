"""Real server processes (Redis, PostgreSQL, proxies) started by tests and
benchmarks on free loopback ports, in temporary folders, and always stopped."""
