"""TUI widgets, grouped by area: sidebar, transcript, composer, settings, status."""
