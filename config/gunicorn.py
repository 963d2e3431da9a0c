"""gunicorn settings of the web process: ``gunicorn -c config/gunicorn.py
config.wsgi:application`` (the Docker image's command). Options given on the
command line win over these."""

from __future__ import annotations

import os

# Every interface: inside a container, reached through its published port.
bind = [os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")]
# Without Redis the cache is per process, and with it the sign-in lockout and the
# per-key budgets: the embedded web is then one process (threads serve in parallel;
# SQLite's single writer is its limit anyway).
workers = int(os.environ.get("WEB_CONCURRENCY", "2" if os.environ.get("REDIS_URL") else "1"))
# Threads make it the gthread worker, which keeps connections alive between requests.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))

# Longer than the idle time of common client pools (requests/urllib3 keep sockets
# until the server closes them, load balancers 60 s): with gunicorn's 2 s default a
# client reusing a pooled connection raced the close and failed with "Remote end
# closed connection without response", which SDKs in sync mode do not retry.
keepalive = 75

# The heartbeat files on /dev/shm: on an overlay filesystem they can stall workers
# long enough to be killed as unresponsive.
SHARED_MEMORY = "/dev/shm"  # noqa: S108 - a tmpfs for heartbeats, no data
if os.path.isdir(SHARED_MEMORY):
    worker_tmp_dir = SHARED_MEMORY

accesslog = "-"
# gunicorn's default line has %(u)s, the HTTP Basic user: for /v1/* that is the API
# key. No user, no headers, and the path without its query string.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
