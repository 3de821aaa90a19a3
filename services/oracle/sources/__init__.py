"""Price sources behind one interface (``base.PriceSource``), chosen by configuration
(``catalog.build_sources``): ``feed = "simulated"`` (the default), ``"replay"`` (a recorded
file) or ``"exchanges"`` (one live WebSocket adapter per configured source)."""
