from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Scoring"

    def ready(self) -> None:
        from leads.category_scores import category_scores_provide
        from leads.services.privacy import lead_data_register
        from scoring.lead_scores import LedgerCategoryScores
        from scoring.privacy import lead_scores_erase, lead_scores_export

        lead_data_register(name="scoring", export=lead_scores_export, erase=lead_scores_erase)

        category_scores_provide(LedgerCategoryScores())
