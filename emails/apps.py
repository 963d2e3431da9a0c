from django.apps import AppConfig


class EmailsConfig(AppConfig):
    """Email a flow sends: senders, templates and their rendering, the send
    records, tracking, consent and unsubscribe, and the outbox of the embedded
    default. Sits between segments and flows: flows' "Send email" step calls it."""

    name = "emails"
    verbose_name = "Emails"

    def ready(self) -> None:
        from emails.reactions import email_sends_on_event
        from leads.services.reactions import reaction_register

        reaction_register(name="emails", react=email_sends_on_event)
