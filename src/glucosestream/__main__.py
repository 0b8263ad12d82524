from __future__ import annotations

from glucosestream.cli import main

main()
