from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        # Anymail's tracking signal is the one signal we receive: it is that
        # library's API for delivering parsed ESP webhooks.
        from anymail.signals import tracking

        from leads.services.email_events import anymail_tracking_received
        from leads.services.reactions import reaction_register
        from leads.services.segments import segments_on_event

        tracking.connect(anymail_tracking_received, dispatch_uid="leads.anymail_tracking")
        reaction_register(name="segments", react=segments_on_event)
