from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatcher.auth import AdminKeyAuthentication, IsAuthenticated
from dispatcher.fields import parse_uuid
from dispatcher.pagination import CreatedCursorPagination
from dispatcher.problems import not_found
from limits import services as limits
from tenants import services
from tenants.models import ApiKey, Tenant
from tenants.serializers import TenantInputSerializer, tenant_to_dict


class AdminView(APIView):
    """Base of /v1/admin routes: ADMIN_API_KEY only."""

    authentication_classes = [AdminKeyAuthentication]
    permission_classes = [IsAuthenticated]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Counted after authentication, so only requests with ADMIN_API_KEY use the admin window.
        limits.check_admin_rate()


def get_tenant(pk: str) -> Tenant:
    tenant = Tenant.objects.filter(id=parse_uuid(pk, "tenant")).first()
    if tenant is None:
        raise not_found(f"tenant {pk} not found")
    return tenant


class TenantListView(AdminView):
    def get(self, request):
        paginator = CreatedCursorPagination()
        page = paginator.paginate_queryset(Tenant.objects.all(), request, view=self)
        return paginator.get_paginated_response([tenant_to_dict(tenant) for tenant in page])

    def post(self, request):
        serializer = TenantInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = Tenant.objects.create(**serializer.validated_data)
        return Response(tenant_to_dict(tenant), status=status.HTTP_201_CREATED)


class TenantDetailView(AdminView):
    def get(self, request, pk):
        return Response(tenant_to_dict(get_tenant(pk)))

    def patch(self, request, pk):
        tenant = get_tenant(pk)
        serializer = TenantInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        for field, value in serializer.validated_data.items():
            setattr(tenant, field, value)
        tenant.save()
        return Response(tenant_to_dict(tenant))


class TenantApiKeyView(AdminView):
    def post(self, request, pk):
        api_key, raw = services.create_api_key(get_tenant(pk))
        return Response({"id": str(api_key.id), "prefix": api_key.prefix, "key": raw}, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(AdminView):
    def delete(self, request, pk):
        api_key = ApiKey.objects.filter(id=parse_uuid(pk, "API key")).first()
        if api_key is None:
            raise not_found(f"API key {pk} not found")
        services.revoke_api_key(api_key)
        return Response(status=status.HTTP_204_NO_CONTENT)
