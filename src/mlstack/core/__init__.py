"""What every component of mlstack shares: the settings base (`settings`), the error base
(`errors`) and the one way to wait (`waiting`). Each image carries it."""
