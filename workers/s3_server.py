"""`travis-logs s3-server`: the embedded S3 of `dev`, keeping its objects in a folder."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from werkzeug.serving import make_server

from travis_logs.devs3.app import persistent_s3
from travis_logs.devs3.folder import ObjectFolder
from travis_logs.settings import Settings
from workers.signals import STOP_SIGNALS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="where objects live (default DEV_DATA_DIR/s3)"
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    folder = args.data_dir or Path(settings.dev_data_dir) / "s3"
    app = persistent_s3(ObjectFolder(folder))
    # Loopback only: this S3 accepts any credentials.
    server = make_server("127.0.0.1", settings.dev_s3_port, app, threaded=True)
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: threading.Thread(target=server.shutdown).start())
    log.info("S3 on http://127.0.0.1:%d, objects in %s", settings.dev_s3_port, folder)
    server.serve_forever()
    return 0
