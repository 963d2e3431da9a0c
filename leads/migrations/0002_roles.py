from django.db import migrations

# Model permissions per role; object-level rules (sales see their own and
# unassigned leads) are enforced in the selectors.
ROLE_PERMISSIONS = {
    "admin": None,  # every permission
    "marketer": [
        ("leads", "lead", ["add", "change", "delete", "view"]),
        ("leads", "event", ["add", "view"]),
        ("leads", "fielddefinition", ["add", "change", "delete", "view"]),
        ("leads", "tag", ["add", "change", "delete", "view"]),
        ("leads", "leadimport", ["add", "view"]),
    ],
    "sales": [
        ("leads", "lead", ["change", "view"]),
        ("leads", "event", ["view"]),
        ("leads", "fielddefinition", ["view"]),
        ("leads", "tag", ["view"]),
    ],
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        if grants is None:
            group.permissions.set(Permission.objects.all())
            continue
        perms = []
        for app_label, model, actions in grants:
            for action in actions:
                perms.append(
                    Permission.objects.get(
                        content_type__app_label=app_label, codename=f"{action}_{model}"
                    )
                )
        group.permissions.set(perms)


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
