"""Allow ``python -m obte_cli``."""

from obte_cli.app import main

if __name__ == "__main__":
    main()
