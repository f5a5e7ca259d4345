"""``python -m jaxloss.parity``: the parity report (see `jaxloss.parity._cli`)."""

from jaxloss.parity._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
