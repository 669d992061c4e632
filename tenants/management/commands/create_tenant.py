from django.core.management.base import BaseCommand, CommandError

from tenants import services


class Command(BaseCommand):
    help = "Create a tenant and print its id and a first API key, which is shown only once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="display name of the tenant, up to 200 characters")

    def handle(self, *args, name: str, **options):
        name = name.strip()
        if not name or len(name) > 200:
            raise CommandError(f"tenant name {name!r} is invalid: use 1 to 200 characters")
        tenant, api_key, raw = services.create_tenant(name)
        self.stdout.write(f"tenant_id={tenant.id}")
        self.stdout.write(f"api_key={raw}")
        self.stdout.write(f"Store the API key now: only its prefix {api_key.prefix} is kept.")
