import sys

from otel_sessions.exporter.cli.main import main

sys.exit(main())
