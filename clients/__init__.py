"""Clients of the WebSocket protocol: the checking client, simulated players and the load tester (not the server)."""
