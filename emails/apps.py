from django.apps import AppConfig


class EmailsConfig(AppConfig):
    """Email a flow sends: senders, templates and their rendering, the send
    records, tracking, consent and unsubscribe, and the outbox of the embedded
    default. Sits between segments and flows: flows' "Send email" step calls it."""

    name = "emails"
    verbose_name = "Emails"

    def ready(self) -> None:
        from emails.consent import confirmations_sweep
        from emails.privacy import lead_emails_erase, lead_emails_export
        from emails.reactions import emails_on_event
        from leads.services.background import sweep_register
        from leads.services.privacy import lead_data_register
        from leads.services.reactions import reaction_register

        reaction_register(name="emails", react=emails_on_event)
        sweep_register(name="consent-confirmations", part=confirmations_sweep)
        lead_data_register(name="emails", export=lead_emails_export, erase=lead_emails_erase)
