"""The event feed: what the organization's systems read from the outbox (EventService)."""
