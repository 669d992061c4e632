from django.contrib import admin
from django.urls import path

from deliveries import dlq_views, ops_views
from deliveries import views as delivery_views
from dispatcher.views import health
from endpoints import views as endpoint_views
from events import views as event_views
from tenants import views as tenant_views

handler404 = "dispatcher.problems.handler404"
handler400 = "dispatcher.problems.handler400"
handler500 = "dispatcher.problems.handler500"

urlpatterns = [
    path("health", health),
    path("admin/", admin.site.urls),
    path("v1/admin/tenants", tenant_views.TenantListView.as_view()),
    path("v1/admin/tenants/<str:pk>", tenant_views.TenantDetailView.as_view()),
    path("v1/admin/tenants/<str:pk>/api-keys", tenant_views.TenantApiKeyView.as_view()),
    path("v1/admin/api-keys/<str:pk>", tenant_views.ApiKeyDetailView.as_view()),
    path("v1/endpoints", endpoint_views.EndpointListView.as_view()),
    path("v1/endpoints/<str:pk>", endpoint_views.EndpointDetailView.as_view()),
    path("v1/endpoints/<str:pk>/rotate-secret", endpoint_views.EndpointRotateSecretView.as_view()),
    path("v1/events", event_views.EventListView.as_view()),
    path("v1/events/<str:pk>", delivery_views.EventDetailView.as_view()),
    path("v1/deliveries", delivery_views.DeliveryListView.as_view()),
    path("v1/deliveries/<str:pk>", delivery_views.DeliveryDetailView.as_view()),
    path("v1/deliveries/<str:pk>/attempts", delivery_views.DeliveryAttemptListView.as_view()),
]

from limits import views as limit_views  # noqa: E402 - appended so concurrent route edits do not collide

urlpatterns += [
    path("v1/limits/safety", limit_views.SafetyLimitsView.as_view()),
    path("v1/limits/usage", limit_views.UsageView.as_view()),
]

# Operations: the dead-letter queue, metrics and retention.
urlpatterns += [
    path("v1/dlq", dlq_views.DlqListView.as_view()),
    path("v1/dlq/replay", dlq_views.DlqReplayView.as_view()),
    path("v1/deliveries/<str:pk>/replay", dlq_views.DeliveryReplayView.as_view()),
    path("v1/admin/dlq/replay", dlq_views.AdminDlqReplayView.as_view()),
    path("v1/metrics/summary", ops_views.MetricsSummaryView.as_view()),
    path("v1/admin/metrics/summary", ops_views.AdminMetricsSummaryView.as_view()),
    path("v1/admin/retention/run", ops_views.AdminRetentionRunView.as_view()),
]
