from __future__ import annotations

from django.urls import path
from reports import views

from conveyor.contrib.django.views import task_status

urlpatterns = [
    path("reports/", views.create_report),
    path("reports/<int:pk>/", views.report_detail),
    path("tasks/<str:task_id>", task_status),
]
