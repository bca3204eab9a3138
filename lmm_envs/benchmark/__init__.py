"""The leaderboard protocol, independent of any agent implementation."""
