from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        # Anymail's tracking signal is the one signal we receive: it is that
        # library's API for delivering parsed ESP webhooks.
        from anymail.signals import tracking
        from django.db.backends.signals import connection_created

        from core.prepared import session_start
        from leads.services.email_events import anymail_tracking_received

        tracking.connect(anymail_tracking_received, dispatch_uid="leads.anymail_tracking")
        # How the worker's prepared statements are kept and planned.
        connection_created.connect(session_start, dispatch_uid="core.prepared_session")
