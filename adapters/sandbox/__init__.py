"""The built-in sandbox acquirer (a real HTTP server) and its adapter."""
