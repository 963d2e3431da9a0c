"""Fit and engagement grades for the leads that existed before the two axes: from
their fit and engagement points and the settings' thresholds (new leads get
them from the ledger as they score)."""

from django.db import migrations


def grade_axes(apps, schema_editor):
    Lead = apps.get_model("leads", "Lead")
    LeadScore = apps.get_model("scoring", "LeadScore")
    ScoreCategory = apps.get_model("scoring", "ScoreCategory")
    ScoringSettings = apps.get_model("scoring", "ScoringSettings")
    settings = ScoringSettings.objects.order_by("id").first()
    if settings is None:
        return
    bands = {
        ("fit", "fit_grade"): [
            ("C", settings.fit_c),
            ("B", settings.fit_b),
            ("A", settings.fit_a),
        ],
        ("engagement", "engagement_grade"): [
            ("3", settings.engagement_3),
            ("2", settings.engagement_2),
            ("1", settings.engagement_1),
        ],
    }
    for (key, column), thresholds in bands.items():
        category = ScoreCategory.objects.filter(key=key).first()
        if category is None:
            continue
        # Lowest band first, each higher one overwriting: a lead ends in the best
        # band its points reach.
        for grade, threshold in thresholds:
            scored = LeadScore.objects.filter(category=category, score__gte=threshold)
            Lead.objects.filter(pk__in=scored.values("lead_id")).update(**{column: grade})


class Migration(migrations.Migration):
    dependencies = [("scoring", "0004_scoring_model")]

    operations = [migrations.RunPython(grade_axes, migrations.RunPython.noop)]
