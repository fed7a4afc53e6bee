"""The fault matrix: every scenario of docs/reliability.md against every broker that applies."""
