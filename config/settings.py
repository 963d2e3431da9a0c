"""Leadflow settings: the one place that reads the environment.

With nothing set the app runs embedded: SQLite (WAL) for data and a second SQLite
file as the Celery broker, everything under ``LEADFLOW_DATA_DIR``. ``DATABASE_URL``
and ``REDIS_URL`` switch to PostgreSQL and Redis.
"""

import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DATA_DIR = Path(env.str("LEADFLOW_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _embedded_secret(name: str) -> str:
    """A random secret kept in the data dir, so an embedded install needs no setup
    and keeps sessions across restarts. Production sets the variable instead."""
    path = DATA_DIR / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _embedded_secret("secret_key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
# A bearer token that lets Prometheus read /metrics (admins signed in always may).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "anymail",
    "leads",
    "scoring",
    "segments",
    "emails",
    "flows",
    "pages",
]

MIDDLEWARE = [
    # Outermost: a request that cannot reach the database or broker gets a 503.
    "leads.middleware_outage.OutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "leads.api.middleware.ApiBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: a signed-in user's saved language wins over the browser's.
    "leads.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "leads.context_processors.roles",
                "leads.context_processors.notifications",
            ],
            # ``person_name``: one way to name a user on every page.
            "builtins": ["leads.templatetags.people"],
        },
    },
]

# --- database -----------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'leadflow.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at
    # BEGIN so two writers queue on the busy timeout instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 10,
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
        ),
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    # A worker keeps its connection, and with it SQLite's page and statement
    # caches, from one task to the next (config.celery.connections_tidy).
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Django's own cursors bind on the client and are never prepared; the statements
    # of the worker's hot path (core/prepared.py) are prepared after this
    # many uses. 0 turns it off (for a pooler that cannot keep prepared statements).
    prepare_after = env.int("DATABASE_PREPARE_THRESHOLD", default=5)
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = prepare_after or None
# Events from the tracking API wait in a SQLite file of their own (beside the
# database's, ``<name>.inbox.sqlite3``) until the worker moves them into the
# database, so that ingest never waits on the worker's write lock
# (leads/services/inbox.py). Only with SQLite; EVENT_INBOX=false turns it off.
EVENT_INBOX = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and env.bool(
    "EVENT_INBOX", default=True
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (INCLUDE) are a PostgreSQL optimisation; SQLite builds the
# same indexes on their key columns alone, which is all the embedded mode needs.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- broker and cache -----------------------------------------------------------


def redis_database_moved(url: str, offset: int) -> str:
    """``url`` naming the Redis database ``offset`` after its own (0 when it
    names none); a URL that names no database by number is returned as it is."""
    parts = urlsplit(url)
    number = parts.path.strip("/")
    if number and not number.isdigit():
        return url
    return urlunsplit(parts._replace(path=f"/{int(number or 0) + offset}"))


REDIS_URL = env.str("REDIS_URL", default="")
# Tests that run two at a time (pytest-xdist workers gw0, gw1 …) each get a
# Redis database of their own, as pytest-django gives each its own test
# database: one test's cache.clear() or sign-in counts must not reach the
# other's.
_TEST_WORKER = env.str("PYTEST_XDIST_WORKER", default="")
if REDIS_URL and _TEST_WORKER.startswith("gw") and _TEST_WORKER[2:].isdigit():
    REDIS_URL = redis_database_moved(REDIS_URL, 1 + int(_TEST_WORKER[2:]))
EMBEDDED_BROKER_PATH = DATA_DIR / "broker.sqlite3"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Counters and caches must not hang a request when Redis is away.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
else:
    CELERY_BROKER_URL = f"sqla+sqlite:///{EMBEDDED_BROKER_PATH}"
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILE = str(DATA_DIR / "celerybeat-schedule")

# --- auth -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's backend, loading the user's preferences (language) with the user.
AUTHENTICATION_BACKENDS = ["leads.backends.PreferenceModelBackend"]
LOGIN_URL = "login"
# Failed sign-ins (leads/services/throttle.py): this many for one user name, or from
# one address, within the lockout time lock it for the lockout time.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=30)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)
# Password-reset mails one address may ask for within the lockout time.
PASSWORD_RESET_LIMIT = env.int("PASSWORD_RESET_LIMIT", default=5)
# Reverse proxies in front of the app that append to X-Forwarded-For; 0 takes the
# address the connection came from.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "staticfiles"))).resolve()
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Collected static files (``collectstatic``, as the Docker image does) are served
# compressed and from there; without them, straight from the sources, so a rebuilt
# bundle shows at once. (With finders on, WhiteNoise would prefer the sources'
# uncompressed copies even when a collected copy exists.)
WHITENOISE_USE_FINDERS = not (STATIC_ROOT / "build" / "app.js.gz").exists()
MEDIA_ROOT = DATA_DIR / "media"
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- security -------------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# --- API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "leads.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "leads.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 50,
    # JSON only (file uploads declare their own parser), bounded in size and nesting
    # depth: a 400 or 413, never a RecursionError.
    "DEFAULT_PARSER_CLASSES": ["leads.api.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["leads.api.throttling.ApiKeyThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "leads.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Leadflow API",
    "DESCRIPTION": "Leads, events and ingestion for Leadflow.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "leads.api.schema.error_responses",
    ],
    # Several models have a "status"; each choice set gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "FlowStatusEnum": "flows.models.FlowStatus",
        "EnrollmentStatusEnum": "flows.models.EnrollmentStatus",
        "StepStatusEnum": "flows.models.StepStatus",
        "DeliveryStatusEnum": "flows.models.DeliveryStatus",
        "FitGradeEnum": "core.vocabulary.FitGrade",
        "EngagementGradeEnum": "core.vocabulary.EngagementGrade",
        "ConsentStateEnum": "leads.models.ConsentState",
        "ConsentSourceEnum": "leads.models.ConsentSource",
        "ConsentSettableStateEnum": "leads.api.consent.SETTABLE_STATES",
    },
}

# --- email ----------------------------------------------------------------------
# With no provider configured, email goes to the outbox in the app (the "Sent
# emails" page): the embedded default shows the whole loop without an account.
# EMAIL_BACKEND picks another (SMTP, or an anymail backend with its settings).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="emails.backends.OutboxBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="leadflow@localhost")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
# Seconds an SMTP server may keep a send waiting before it counts as failed (and
# is retried); without it a silent server would hold a worker forever.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
# A mailbox that unsubscribes whoever writes to it, offered in List-Unsubscribe
# beside the one-click link (blank: the link only).
EMAIL_UNSUBSCRIBE_MAILTO = env.str("EMAIL_UNSUBSCRIBE_MAILTO", default="")
# A send claimed longer ago than this belonged to a sender that died.
EMAIL_SEND_CLAIM_SECONDS = env.int("EMAIL_SEND_CLAIM_SECONDS", default=120)
# SMTP sessions a sending worker child keeps open: a batch's messages go out side
# by side, each up to its final ".", and one statement records them all sent.
# Providers limit concurrent connections per client: keep this times the
# sending worker children under their limit.
EMAIL_SMTP_SESSIONS = env.int("EMAIL_SMTP_SESSIONS", default=10)
ANYMAIL = {
    # Anymail checks this HTTP basic auth on every tracking webhook; providers that
    # sign their payloads get their signing key in addition.
    "WEBHOOK_SECRET": env.str("ANYMAIL_WEBHOOK_SECRET", default="")
    or "leadflow:" + _embedded_secret("webhook_secret")[:32],
}
# Mailgun signs its webhooks; Anymail refuses them until the signing key is set.
if env.str("MAILGUN_WEBHOOK_SIGNING_KEY", default=""):
    ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"] = env.str("MAILGUN_WEBHOOK_SIGNING_KEY")

# --- ingestion limits (Segment's Tracking API limits) ---------------------------
INGEST_MAX_EVENT_BYTES = 32 * 1024
INGEST_MAX_BATCH_BYTES = 500 * 1024
INGEST_MAX_BATCH_EVENTS = 500
# Requests per API key (ingestion and API writes) per window of seconds; beyond it 429.
INGEST_RATE_LIMIT = env.int("INGEST_RATE_LIMIT", default=5000)
INGEST_RATE_WINDOW = env.int("INGEST_RATE_WINDOW", default=10)
# Unprocessed events older than this are re-enqueued by the beat sweeper.
EVENT_SWEEP_AFTER_SECONDS = env.int("EVENT_SWEEP_AFTER_SECONDS", default=30)
# PostgreSQL: months of events kept besides the current one (the table is
# partitioned by month; manage.py events_partitions, run daily by beat, drops
# older months once all their events are processed). 0 keeps everything. With
# it set, segment and flow rules cannot count events further back.
EVENT_RETENTION_MONTHS = max(0, env.int("EVENT_RETENTION_MONTHS", default=0))
# Detach old months and rename them leads_event_archive_YYYY_MM (for a dump,
# then DROP TABLE by hand) instead of dropping them.
EVENT_RETENTION_ARCHIVE = env.bool("EVENT_RETENTION_ARCHIVE", default=False)

# --- flows ------------------------------------------------------------------------
# A flow step that calls on people (a sales task, a notification) does nothing for
# an event that happened more than this many days ago: history loaded after the
# fact (a CSV of last year, the demo's month) still scores, but asks nobody to act
# on what is long past (flows.rules.stale_cause_skip).
FLOW_STALE_EVENT_DAYS = env.int("FLOW_STALE_EVENT_DAYS", default=3)

# --- outbound HTTP (flows/outbound.py) -------------------------------------------
# Hosts, addresses or networks (e.g. "hooks.internal,10.1.2.0/24") that webhooks and
# Slack posts may reach although they are local or private; nothing else of that kind.
OUTBOUND_ALLOWED_HOSTS = env.list("OUTBOUND_ALLOWED_HOSTS", default=[])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
