"""`python -m server ...` is `crmops ...` (for environments without the console script)."""

from server.cli import main

main()
