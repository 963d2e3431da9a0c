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
    path("flows/<int:flow_id>/node-form/", views.flow_node_form, name="flow-node-form"),
    path(
        "flows/<int:flow_id>/condition-count/",
        views.flow_condition_count,
        name="flow-condition-count",
    ),
]
