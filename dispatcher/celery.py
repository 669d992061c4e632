import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatcher.settings")

app = Celery("dispatcher")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs) -> None:
    """Close database connections that are broken, failed a query or passed CONN_MAX_AGE.

    Django does this before and after each request. Tasks get the same treatment, so a
    worker reuses its connection between tasks and still drops one that the database closed.
    """
    from django.db import close_old_connections as close_django_connections

    close_django_connections()
