"""--log-level holds even when a library sets its own loggers' levels after setup
(klaviyo-api's configuration sets urllib3's logger to WARNING when it is built)."""
from __future__ import annotations

import io
import logging

from giftsync.runtime import logs


def test_the_handler_keeps_to_the_level_asked_for():
    stream = io.StringIO()
    handler = logs.setup(fmt="text", level="ERROR", stream=stream)
    try:
        logging.getLogger("urllib3.connectionpool").setLevel(logging.WARNING)   # what a library may do
        logging.getLogger("urllib3.connectionpool").warning("Retrying after connection broken")
        logging.getLogger("giftsync.test").error("shown")
        assert stream.getvalue().count("\n") == 1 and "shown" in stream.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger("urllib3.connectionpool").setLevel(logging.NOTSET)
