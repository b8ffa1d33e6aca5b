"""Notifications to users outside the platform (Slack incoming webhooks)."""
