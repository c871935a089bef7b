"""Where crmops keeps state: the import journal, the audit log and the state replicas share.

SQLite (`sqlite`, `journal`, `audit`, `store`) is the embedded default; PostgreSQL
(`postgres`) holds the journal and audit log for replicas, Redis (`redis`, `shared`) the
rate limits, tokens and Slack state. Below the bulk engine and the tools, above the vendors.
"""
