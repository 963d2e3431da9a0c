"""The neutral bottom layer: what every app shares and no app owns.

Prepared statements for the hot paths, the caches scoped to a worker's batch and
to one event's transaction, roles and their sets, the htmx request type, and the
shared vocabularies (event types, grades). It imports Django and the standard
library, never an app of ours (an import contract in ``make lint`` says so).
"""
