"""Alert notifications: from the ``alert`` outbox to people, through apprise.

Pure parts (``now`` passed in; the ``notifications:`` section is
:mod:`gateway.config.notifications`),
:mod:`.matchers`, :mod:`.router` (alert -> recipients), :mod:`.quiet` (quiet hours),
:mod:`.inhibit`, :mod:`.grouping` (Alertmanager-like groups and their timers),
:mod:`.compose` (the message text). I/O shell: :mod:`.outbox` (the notifier's SQLite
tables), :mod:`.apprise_urls` (the apprise boundary), :mod:`.dispatcher` (the thread).
docs/alerts.md is the user's guide.
"""
