from django.db import transaction
from rest_framework import status
from rest_framework.response import Response

from dispatcher.fields import StrictIntegerField, StrictSerializer
from dispatcher.pagination import CreatedCursorPagination
from dispatcher.views import TenantView
from endpoints import services
from endpoints.models import Endpoint
from endpoints.serializers import EndpointInputSerializer, endpoint_to_dict
from limits import services as limits


def live_endpoints():
    return Endpoint.objects.filter(deleted_at__isnull=True)


class EndpointListView(TenantView):
    def get(self, request):
        paginator = CreatedCursorPagination()
        page = paginator.paginate_queryset(live_endpoints().filter(tenant=self.tenant), request, view=self)
        return paginator.get_paginated_response([endpoint_to_dict(endpoint) for endpoint in page])

    def post(self, request):
        limits.check_endpoint_create_rate(self.tenant)
        serializer = EndpointInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        secret = data.pop("signing_secret", None)
        with transaction.atomic():
            # The tenant row lock makes the count and the insert one step under concurrency.
            limits.lock_tenant(self.tenant)
            limits.check_endpoint_count(self.tenant, live_endpoints().filter(tenant=self.tenant).count())
            endpoint, secret = services.create_endpoint(self.tenant, data, secret)
        body = endpoint_to_dict(endpoint)
        body["signing_secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED)


class EndpointDetailView(TenantView):
    def get(self, request, pk):
        return Response(endpoint_to_dict(self.get_scoped(live_endpoints(), pk, "endpoint")))

    def patch(self, request, pk):
        endpoint = self.get_scoped(live_endpoints(), pk, "endpoint")
        serializer = EndpointInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(endpoint_to_dict(services.update_endpoint(endpoint, serializer.validated_data)))

    def delete(self, request, pk):
        services.delete_endpoint(self.get_scoped(live_endpoints(), pk, "endpoint"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RotateInputSerializer(StrictSerializer):
    overlap_days = StrictIntegerField(required=False, min_value=0, max_value=365)


class EndpointRotateSecretView(TenantView):
    def post(self, request, pk):
        endpoint = self.get_scoped(live_endpoints(), pk, "endpoint")
        serializer = RotateInputSerializer(data=request.data if request.body else {})
        serializer.is_valid(raise_exception=True)
        secret = services.rotate_secret(endpoint, serializer.validated_data.get("overlap_days"))
        return Response({"id": str(endpoint.id), "signing_secret": secret})
