"""The auditor: rebuilds every processor partition from its input log and checks it.

Redis against the log (every persisted entry), the state proofs on ``state.proofs``
against the replay, money conservation across all accounts to the micro-dollar, and
every fill exactly once (docs/auditor.md). ``python -m services.auditor``.
"""
