import os
import time

from conveyor import Conveyor  # was: from celery import Celery


celery = Conveyor(__name__)  # was: Celery(__name__)
celery.conf.broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379")
celery.conf.result_backend = os.environ.get("CELERY_RESULT_BACKEND", "redis://localhost:6379")
celery.conf.track_started = False  # new: Celery's default; the tests wait while PENDING


@celery.task(name="create_task")
def create_task(task_type):
    time.sleep(int(task_type) * 10)
    return True
