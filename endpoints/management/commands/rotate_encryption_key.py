from django.core.management.base import BaseCommand, CommandError

from endpoints.keyrotation import REENCRYPT_BATCH_SIZE, RotationCounts, reencrypt_all_secrets


class Command(BaseCommand):
    help = "Re-encrypt every endpoint signing secret under the first key of DISPATCHER_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=REENCRYPT_BATCH_SIZE,
                            help=f"secrets re-encrypted per transaction (default {REENCRYPT_BATCH_SIZE})")

    def handle(self, *args, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError(f"--batch-size={batch_size} is invalid: use a whole number of at least 1")
        counts = reencrypt_all_secrets(batch_size, progress=self._progress)
        self.stdout.write(f"re-encrypted {counts.reencrypted} of {counts.scanned} secrets; "
                          f"{counts.undecryptable} undecryptable")
        if counts.undecryptable:
            raise CommandError(
                f"{counts.undecryptable} secrets are not decrypted by any key in DISPATCHER_ENCRYPTION_KEYS; "
                "add the key they were encrypted with (after the newest) and run the command again"
            )

    def _progress(self, counts: RotationCounts) -> None:
        self.stdout.write(f"... {counts.scanned} secrets scanned")
