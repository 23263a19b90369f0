"""A model module being imported when SIGTERM arrives (a CI cancel, `timeout`)."""

import signal
import time

signal.raise_signal(signal.SIGTERM)
time.sleep(5)  # the handler runs before this
