"""Forge API clients (Gitea, Forgejo, GitHub): open or update pull requests, comment, check."""
