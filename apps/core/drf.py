"""The management API's last line: an unexpected exception answers JSON, not Django's HTML page."""

import logging

from rest_framework.response import Response
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)


def json_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is not None:
        return response
    log.exception("management API view failed", exc_info=exc)
    return Response({"detail": "The server failed to process the request."}, status=500)
