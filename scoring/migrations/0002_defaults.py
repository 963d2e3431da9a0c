from django.db import migrations


def create_defaults(apps, schema_editor):
    ScoreCategory = apps.get_model("scoring", "ScoreCategory")
    ScoringSettings = apps.get_model("scoring", "ScoringSettings")
    for key, label in (("fit", "Fit"), ("engagement", "Engagement")):
        ScoreCategory.objects.get_or_create(key=key, defaults={"label": label, "builtin": True})
    if not ScoringSettings.objects.exists():
        ScoringSettings.objects.create()


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
