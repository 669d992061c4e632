"""manage.py create_api_key: issue a new API key for an existing tenant."""

import uuid

from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once, because only its prefix is stored."

    def add_arguments(self, parser):
        parser.add_argument("tenant_id", help="id (UUID) of the tenant that receives the key")

    def handle(self, *args, tenant_id: str, **options):
        try:
            tenant = Tenant.objects.filter(id=uuid.UUID(tenant_id)).first()
        except ValueError:
            raise CommandError(f"tenant id {tenant_id!r} is not a UUID") from None
        if tenant is None:
            raise CommandError(f"tenant {tenant_id} not found: list tenants with GET /v1/admin/tenants")
        api_key, raw = services.create_api_key(tenant)
        self.stdout.write(f"api_key_id={api_key.id}")
        self.stdout.write(f"api_key={raw}")
        self.stdout.write(f"Store the API key now: only its prefix {api_key.prefix} is kept.")
        if tenant.disabled:
            self.stderr.write(f"warning: tenant {tenant.id} is disabled, so the key is rejected until it is enabled")
