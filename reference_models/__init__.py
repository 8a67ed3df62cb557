"""Reference anomaly-detection models for 3CAD (the CFRG baseline and others)."""
