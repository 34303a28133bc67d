"""What the Lambda handlers share: typed events and the powertools wiring."""
