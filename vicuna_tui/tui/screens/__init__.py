"""TUI screens: one module per screen."""
