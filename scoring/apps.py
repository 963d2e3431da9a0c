from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Scoring"

    def ready(self) -> None:
        from leads.category_scores import category_scores_provide
        from leads.services.privacy import lead_data_register
        from leads.services.reactions import reaction_register
        from scoring.lead_scores import LedgerCategoryScores
        from scoring.privacy import lead_scores_erase, lead_scores_export
        from scoring.services import scoring_on_event

        # First (REACTION_ORDER): segments and flows see the grade a stage change left.
        reaction_register(name="scoring", react=scoring_on_event)

        lead_data_register(name="scoring", export=lead_scores_export, erase=lead_scores_erase)

        category_scores_provide(LedgerCategoryScores())
