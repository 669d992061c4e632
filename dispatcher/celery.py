import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatcher.settings")

app = Celery("dispatcher")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
