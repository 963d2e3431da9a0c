from django.urls import path

from flows import views

urlpatterns = [
    path("flows/", views.flow_list, name="flow-list"),
    path("flows/<int:pk>/", views.flow_builder, name="flow-builder"),
    path(
        "flows/<int:pk>/versions/<int:number>/restore/",
        views.flow_version_restore_page,
        name="flow-version-restore",
    ),
    path("flows/<int:pk>/header/", views.flow_header, name="flow-header"),
    path("flows/<int:pk>/settings/", views.flow_settings, name="flow-settings"),
    path("flows/<int:pk>/duplicate/", views.flow_duplicate_page, name="flow-duplicate"),
    path("flows/<int:pk>/archive/", views.flow_archive_page, name="flow-archive"),
    path("flows/<int:pk>/delete/", views.flow_delete_page, name="flow-delete"),
    path("flows/<int:pk>/changes/", views.flow_changes_page, name="flow-changes"),
    path("flows/<int:flow_id>/node-form/", views.flow_node_form, name="flow-node-form"),
    path(
        "flows/<int:flow_id>/condition-count/",
        views.flow_condition_count,
        name="flow-condition-count",
    ),
]
