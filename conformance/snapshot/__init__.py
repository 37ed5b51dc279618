"""Snapshots: a fixed corpus of cases per loss with what a backend answered on each
(``snapshot record``), replayed later on another torch or backend and classified case by case
(``snapshot compare``). The file format is described in docs/snapshots.md."""
