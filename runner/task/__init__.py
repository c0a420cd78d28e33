"""One attempt of one task: its execution, progress heartbeat, verdict, attempt logs
and staging.

``execution`` sequences the rest; nothing here imports the worker, which only hands
an attempt its task and its slot (import-linter holds it).
"""
