from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Report
from .tasks import build_report


@csrf_exempt  # a JSON API for the example; keep CSRF on for forms in a real site
@require_POST
def create_report(request: HttpRequest) -> JsonResponse:
    """Create the report row and queue its generation once the row is committed."""
    title = request.POST.get("title", "").strip()
    if not title:
        return JsonResponse({"error": "title is required"}, status=400)
    with transaction.atomic():
        report = Report.objects.create(title=title)
        result = build_report.delay_on_commit(report.pk)
    return JsonResponse({"report": report.pk, "task_id": result.id,
                         "status_url": f"/tasks/{result.id}"}, status=202)


@require_GET
def report_detail(request: HttpRequest, pk: int) -> JsonResponse:
    report = Report.objects.filter(pk=pk).first()
    if report is None:
        return JsonResponse({"error": "no such report"}, status=404)
    return JsonResponse({"id": report.pk, "title": report.title, "status": report.status,
                         "rows": report.rows})
