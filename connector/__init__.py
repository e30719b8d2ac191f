"""Event-driven directory connector: identity changes in, Verba extensions out."""
